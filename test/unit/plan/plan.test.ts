import { describe, expect, it } from 'vitest';
import { desiredResources } from '../../../recipes/index.js';
import { computePlan, summarize } from '../../../src/plan/plan.js';
import { renderPlan } from '../../../src/plan/render.js';
import { facts, plainCtx, platformFrom, sha } from '../helpers.js';

const P = platformFrom(`version: 1
hosts:
  - { name: h1, address: 198.18.1.11, labels: [app] }
  - { name: h2, address: 198.18.1.12 }
files:
  - { path: /etc/app.conf, content: "port=1\\n", notify: [app.service], hosts: [app] }
  - { path: /etc/motd, content: "hi\\n" }
packages:
  - { name: jq }
units:
  - { name: app.service, content: "[Service]\\nExecStart=/bin/true\\n", hosts: [app], reload: true }
`);
const desired = desiredResources(P);
const unitSha = sha('[Service]\nExecStart=/bin/true\n');
const inSync = {
  'file:/etc/app.conf': { kind: 'file', owner: 'root', group: 'root', mode: '644', sha256: sha('port=1\n') },
  'file:/etc/motd': { kind: 'file', owner: 'root', group: 'root', mode: '644', sha256: sha('hi\n') },
  'package:jq': { version: '1.6-2.1' },
  'unit:app.service': { kind: 'file', owner: 'root', group: 'root', mode: '644', sha256: unitSha, enabled: 'enabled', active: 'active' },
};
const plan = (f: Map<string, ReturnType<typeof facts>>, filter?: { target: string[]; exclude: string[] }) =>
  computePlan({ hosts: P.hosts, desired, facts: f, ctx: plainCtx, ...(filter ? { filter } : {}) });
const ids = (p: ReturnType<typeof plan>, host: string) => p.hosts.find((h) => h.host === host)!.changes.map((c) => `${c.action} ${c.id}`);

describe('computePlan', () => {
  it('plans everything on a bare host, in type order, with no restart for a new unit', () => {
    const p = plan(new Map([['h1', facts('h1')], ['h2', facts('h2')]]));
    expect(ids(p, 'h1')).toEqual(['create package:jq', 'create file:/etc/app.conf', 'create file:/etc/motd', 'create unit:app.service']);
    expect(ids(p, 'h2')).toEqual(['create package:jq', 'create file:/etc/motd']);
    expect(summarize(p)).toMatchObject({ create: 6, update: 0, delete: 0, restart: 0, hostsChanged: 2 });
  });

  it('plans nothing when the facts match', () => {
    const p = plan(new Map([['h1', facts('h1', inSync)], ['h2', facts('h2', inSync)]]));
    expect(summarize(p)).toMatchObject({ create: 0, update: 0, delete: 0, restart: 0 });
    expect(renderPlan(p)).toContain('No changes. 2 hosts are in sync.');
    expect(p.hosts[0]!.inSync).toBe(4);
  });

  it('shows a unified diff of a changed file and reloads the unit it notifies, once', () => {
    const old = Buffer.from('port=0\n').toString('base64');
    const f = { ...inSync, 'file:/etc/app.conf': { ...inSync['file:/etc/app.conf'], sha256: sha('port=0\n'), content: old, mode: '600' } };
    const p = plan(new Map([['h1', facts('h1', f)], ['h2', facts('h2', inSync)]]));
    const c = p.hosts[0]!.changes;
    expect(c.map((x) => `${x.action} ${x.id}`)).toEqual(['update file:/etc/app.conf', 'reload unit:app.service']);
    expect(c[0]!.details).toEqual(['content changed', 'mode 0600 → 0644']);
    expect(c[0]!.diff).toContain('-port=0\n+port=1');
    expect(c[1]!.reason).toBe('file:/etc/app.conf changed');
  });

  it('restarts (not reloads) a running unit whose own file changed', () => {
    const f = { ...inSync, 'unit:app.service': { ...inSync['unit:app.service'], sha256: sha('old') } };
    const p = plan(new Map([['h1', facts('h1', f)]]));
    expect(ids(p, 'h1')).toEqual(['update unit:app.service', 'restart unit:app.service']);
  });

  it('plans removal of what the manifest owns and the platform no longer declares, and nothing else', () => {
    const f = { ...inSync, 'file:/etc/old.conf': { kind: 'file', owner: 'root', group: 'root', mode: '644', sha256: 'x' }, 'file:/etc/gone': { kind: 'absent' } };
    const p = plan(new Map([['h2', facts('h2', f, [['file', '/etc/old.conf'], ['file', '/etc/gone'], ['file', '/etc/motd']])]]));
    expect(ids(p, 'h2')).toEqual(['delete file:/etc/old.conf']);
  });

  it('never shows sensitive content, even in a diff', () => {
    const S = platformFrom(`version: 1\nhosts: [{ name: h1, address: a }]\nfiles:\n  - { path: /etc/t, content: "\${env:T}" }\n`, { env: () => 'topsecret', file: () => undefined });
    const f = { 'file:/etc/t': { kind: 'file', owner: 'root', group: 'root', mode: '600', sha256: sha('old'), content: Buffer.from('old').toString('base64') } };
    const p = computePlan({ hosts: S.hosts, desired: desiredResources(S), facts: new Map([['h1', facts('h1', f)]]), ctx: { contentSha256: (c) => sha(c.replace('${env:T}', 'topsecret')) } });
    const out = renderPlan(p);
    expect(p.hosts[0]!.changes[0]!.details).toEqual(['content changed (sensitive)']);
    expect(p.hosts[0]!.changes[0]!.diff).toBeUndefined();
    expect(out).not.toContain('topsecret');
    expect(JSON.stringify(p)).not.toContain('topsecret');
  });

  it('limits the plan with --target and --exclude by host, label or resource', () => {
    const all = new Map([['h1', facts('h1')], ['h2', facts('h2')]]);
    expect(plan(all, { target: ['app'], exclude: [] }).hosts.filter((h) => h.changes.length).map((h) => h.host)).toEqual(['h1']);
    expect(ids(plan(all, { target: ['file:/etc/*'], exclude: ['h1'] }), 'h2')).toEqual(['create file:/etc/motd']);
    expect(ids(plan(all, { target: [], exclude: ['package:*'] }), 'h2')).toEqual(['create file:/etc/motd']);
  });

  it('changes the facts hash when a fact a change depends on changes, and not otherwise', () => {
    const f1 = facts('h2', { ...inSync, 'file:/etc/motd': { kind: 'absent' } });
    const f2 = facts('h2', { ...inSync, 'file:/etc/motd': { kind: 'absent' }, 'package:jq': { version: '9' } });
    const f3 = facts('h2', { ...inSync, 'file:/etc/motd': { kind: 'file', owner: 'root', group: 'root', mode: '600', sha256: 'y' } });
    const h = (f: ReturnType<typeof facts>) => plan(new Map([['h2', f]]), { target: ['file:/etc/motd'], exclude: [] }).hosts[0]!.factsHash;
    expect(h(f1)).toBe(h(f2));
    expect(h(f1)).not.toBe(h(f3));
  });
});

describe('units from packages', () => {
  it('a new unit file for a unit a package already runs is restarted, not just started', async () => {
    const { handlerFor } = await import('../../../src/resources/index.js');
    const u = desired.get('h1')!.find((r) => r.id === 'unit:app.service')!;
    const d = handlerFor(u).diff(u, { kind: 'absent', enabled: 'enabled', active: 'active' }, plainCtx)!;
    expect(d.details).toEqual(['enable', 'restart (running from a package)']);
    const steps = handlerFor(u).steps({ host: 'h1', id: u.id, type: 'unit', resource: u, ...d } as never);
    expect(steps.map((s) => s.desc)).toEqual(['write /etc/systemd/system/app.service', 'daemon-reload; enable app.service', 'restart app.service']);
  });
});
