/**
 * I/O tier: the probe script and the apply steps run for real with /bin/sh on this machine, in temp dirs
 * (the same scripts run on lab hosts in test/e2e).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalExecutor } from '../../../src/executors/local.js';
import { buildProbe, parseProbe } from '../../../src/facts/probe.js';
import type { DirectoryResource, FileResource, ReleaseResource, Resource } from '../../../src/model/resources.js';
import { handlerFor } from '../../../src/resources/index.js';
import type { Change, Step } from '../../../src/resources/types.js';
import { plainCtx, sha } from '../helpers.js';

const ex = new LocalExecutor();
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rtctl-steps-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function probe(rs: Resource[]) {
  const r = await ex.runScript(buildProbe(rs));
  expect(r.stderr).toBe('');
  return parseProbe('local', r.stdout);
}

async function apply(r: Resource, action: Change['action'], extra: Partial<Change> = {}, staged?: string) {
  const steps = handlerFor(r).steps({ host: 'local', id: r.id, type: r.type, action, resource: r, details: [], ...extra } as never) as Step[];
  for (const s of steps) {
    if (s.kind !== 'sh') continue;
    const args = s.args.map((a) => (a === '@STAGED@' ? staged! : a));
    const res = await ex.run(['sh', '-c', s.script, 'rtctl', ...args], s.stdin === undefined ? {} : { stdin: s.stdin });
    if (res.code !== 0) return res;
  }
  return { code: 0, stdout: '', stderr: '' };
}

const file = (path: string, content: string, extra: Partial<FileResource> = {}): FileResource => ({
  type: 'file', id: `file:${path}`, path, content, owner: 'root', group: 'root', mode: '0640', sensitive: false, ...extra,
});

describe('file resource on a real filesystem', () => {
  it('probes absent, writes atomically with owner and mode, then probes in sync', async () => {
    const r = file(join(dir, 'sub/a.conf'), 'a=1\n');
    let f = await probe([r]);
    expect(f.resources.get(r.id)).toEqual({ kind: 'absent' });
    expect((await apply(r, 'create')).code).toBe(0);
    expect(readFileSync(r.path, 'utf8')).toBe('a=1\n');
    expect((statSync(r.path).mode & 0o777).toString(8)).toBe('640');
    f = await probe([r]);
    expect(f.resources.get(r.id)).toMatchObject({ kind: 'file', owner: 'root', mode: '640', sha256: sha('a=1\n'), content: Buffer.from('a=1\n').toString('base64') });
    expect(handlerFor(r).diff(r, f.resources.get(r.id)!, plainCtx)).toBeUndefined();
    expect(readdirSync(join(dir, 'sub'))).toEqual(['a.conf']);
  });

  it('a failing check leaves the old file in place and no staged file behind', async () => {
    const r = file(join(dir, 'checked.conf'), 'good\n', { check: 'grep -q good {}' });
    expect((await apply(r, 'create')).code).toBe(0);
    const bad = { ...r, content: 'bad\n' };
    const res = await apply(bad, 'update');
    expect(res.code).toBe(65);
    expect(res.stderr).toContain('check failed (grep -q good {})');
    expect(readFileSync(r.path, 'utf8')).toBe('good\n');
    expect(readdirSync(dir).filter((n) => n.startsWith('.rtctl-'))).toEqual([]);
  });

  it('never reads back sensitive content', async () => {
    const r = file(join(dir, 'secret'), 'x\n', { sensitive: true, mode: '0600' });
    await apply(r, 'create');
    expect((await probe([r])).resources.get(r.id)!.content).toBeUndefined();
  });
});

describe('directory resource', () => {
  it('creates, fixes mode, and removes only when empty', async () => {
    const r: DirectoryResource = { type: 'directory', id: `directory:${dir}/d`, path: `${dir}/d`, owner: 'root', group: 'root', mode: '0750' };
    await apply(r, 'create');
    expect((await probe([r])).resources.get(r.id)).toMatchObject({ kind: 'dir', mode: '750' });
    writeFileSync(join(r.path, 'keep'), 'x');
    const res = await apply(r, 'delete');
    expect(res.code).toBe(0);
    expect(existsSync(r.path)).toBe(true);
  });
});

describe('release resource', () => {
  const artifact = (v: string, content: string) => ({ name: 'tool', version: v, sha256: sha(content), format: 'binary' as const, filename: 'tool', source: '' });
  const rel = (v: string, content: string, keep = 2): ReleaseResource => ({ type: 'release', id: `release:${dir}/opt`, dir: `${dir}/opt`, artifact: artifact(v, content), keep, owner: 'root' });

  async function install(r: ReleaseResource, content: string) {
    const staged = join(dir, `staged-${r.artifact.version}`);
    writeFileSync(staged, content);
    const f = await probe([r]);
    const d = handlerFor(r).diff(r, f.resources.get(r.id)!, plainCtx)!;
    return apply(r, d.action, { details: d.details }, staged);
  }

  it('installs releases, switches current atomically, keeps the newest N, verifies checksums', async () => {
    for (const v of ['1', '2', '3']) expect((await install(rel(v, `#!/bin/sh\necho ${v}\n`), `#!/bin/sh\necho ${v}\n`)).code).toBe(0);
    expect(readlinkSync(`${dir}/opt/current`)).toBe('releases/3');
    expect(readdirSync(`${dir}/opt/releases`).sort()).toEqual(['2', '3']);
    const f = await probe([rel('3', '')]);
    expect(f.resources.get(`release:${dir}/opt`)).toEqual({ current: '3', releases: `2=${sha('#!/bin/sh\necho 2\n')} 3=${sha('#!/bin/sh\necho 3\n')}` });
    // Rolling back to a kept release needs no upload.
    const back = rel('2', '#!/bin/sh\necho 2\n');
    expect(handlerFor(back).diff(back, f.resources.get(back.id)!, plainCtx)!.details).toEqual(['tool 3 → 2', 'already on host: switch only']);
    // A staged file whose checksum does not match is refused and current stays.
    const res = await install(rel('4', 'expected'), 'tampered');
    expect(res.code).toBe(66);
    expect(res.stderr).toContain('checksum mismatch on host');
    expect(readlinkSync(`${dir}/opt/current`)).toBe('releases/3');
  });
});
