/**
 * Services end to end on a 4-host lab `svc`: examples/services.platform.yaml — h1 runs a real HAProxy (from the
 * primitives), h2–h4 one instance each of the example service, Consul servers on h1–h3 (client on h4). A load generator
 * (bench/rollout.ts) runs through HAProxy during every rollout. The tests share the lab and run in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { report, startLoad, type LoadStats } from '../../bench/rollout.js';
import { sshArgs } from '../../src/lab/index.js';
import { teardownLab, withLab, type LabInfo } from './helpers/lab.js';
import { cliIn } from './helpers/cli.js';

const LAB = 'svc';
const ROOT = resolve(import.meta.dirname, '../..');
const RTCTL = join(ROOT, 'bin/rtctl');
const CONSUL = join(ROOT, '.rtctl/artifacts/consul-1.8.7');
let lab: LabInfo;
let work: string;

const rtctl = cliIn(() => work, 300_000);

/** `rtctl rollback|restart SERVICE`: through the CLI once it is wired in main.ts, else through the module. */
async function serviceCmd(cmd: 'rollback' | 'restart') {
  const help = await execa(RTCTL, ['--help'], { reject: false });
  if (help.stdout.includes(`\n  ${cmd} `)) return rtctl([cmd, 'hello', '--auto-approve']);
  const code = `const m = await import(${JSON.stringify(join(ROOT, 'dist/src/cli/service.js'))});
try { await m.${cmd}Command('hello', { file: 'platform.yaml', parallel: 20, acceptNewHostKeys: false, autoApprove: true }); }
catch (e) { process.stderr.write('error: ' + e.message + '\\n'); process.exit(e.exitCode ?? 1); }`;
  const r = await execa('node', ['--input-type=module', '-e', code], { cwd: work, reject: false, env: { NO_COLOR: '1' }, stdin: 'ignore', timeout: 300_000 });
  return { code: r.exitCode, out: r.stdout, err: r.stderr, all: `${r.stdout}\n${r.stderr}` };
}

const prefix = () => lab.gateway.replace(/\.1$/, '.');
const addr = (h: string) => lab.hosts.find((x) => x.name === h)!.address;
const lbUrl = () => `http://${addr('h1')}/`;
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

/** The example platform pointed at this lab, running `version` of hello, with optional edits. */
function writePlatform(version: string, edit: (s: string) => string = (s) => s) {
  const file = `hello/hello-${version}.py`;
  let s = readFileSync(join(ROOT, 'examples/services.platform.yaml'), 'utf8')
    .replaceAll('/var/lib/rtctl/lab/default/', `${lab.dir}/`)
    .replaceAll('198.18.1.', prefix())
    .replace('path: ../.rtctl/artifacts/consul-1.8.7', `path: ${CONSUL}`)
    .replace(/path: hello\/hello\.py\n    sha256: [0-9a-f]{64}/, `path: ${file}\n    sha256: ${sha(join(work, file))}`)
    .replace(/(sha256: [0-9a-f]{64}\n    version: )1\.0\.0/, `$1${version}`);
  // A shorter health deadline than the example's 20 s keeps the failing-version test short.
  s = edit(s.replace('deadline: 20s', 'deadline: 8s'));
  writeFileSync(join(work, 'platform.yaml'), s);
}

/** A release of the example service: another VERSION, optionally with a /health that never passes. */
function makeRelease(version: string, healthy = true) {
  const src = readFileSync(join(ROOT, 'examples/hello/hello.py'), 'utf8');
  const out = src.replace('VERSION = "1.0.0"', `VERSION = "${version}"`).replace('HEALTHY = True', healthy ? 'HEALTHY = True' : 'HEALTHY = False');
  writeFileSync(join(work, `hello/hello-${version}.py`), out);
}

/** Runs a root shell script on a lab host (sent on stdin); its trimmed stdout. */
async function root(host: string, cmd: string): Promise<string> {
  const x = await execa('ssh', [...sshArgs(lab, host), 'sudo sh -s'], { input: cmd, reject: false, timeout: 60_000 });
  return x.stdout.trim();
}

/** Running version of the instance on a host (state file written by the rollout) and its unit state. */
async function instance(host: string): Promise<string> {
  return root(host, 'cat /var/lib/rtctl/services/hello/8080 | cut -d" " -f1; systemctl is-active hello@8080.service; ls /var/lib/rtctl/services/hello/8080.drained 2>/dev/null || true');
}

async function underLoad<T>(fn: () => Promise<T>): Promise<{ result: T; stats: LoadStats; seconds: number }> {
  const load = startLoad(lbUrl(), { concurrency: 4, maxSeconds: 180 });
  const t0 = performance.now();
  const result = await fn();
  const seconds = (performance.now() - t0) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  const stats = await load.stop();
  process.stderr.write(`[services e2e]\n${report(stats, seconds)}\n`);
  return { result, stats, seconds };
}

/** HAProxy's view of be_hello: `name op_state admin_state` per server. */
async function lbServers(): Promise<string[]> {
  const out = await root('h1', `printf 'show servers state be_hello\\n' | bash -c 'exec 3<>/dev/tcp/${addr('h1')}/9999; cat >&3; cat <&3'`);
  return out.split('\n').filter((l) => /^\d+ be_hello /.test(l)).map((l) => l.split(' ')).map((f) => `${f[3]} ${f[5]} ${f[6]}`);
}

/** Consul's view of hello (as the management token sees it): `node id version check=status…` per instance. */
async function consulHealth(): Promise<string[]> {
  const out = await root('h2', `T=$(cat /etc/consul.d/management.token)
curl -s -H "X-Consul-Token: $T" http://127.0.0.1:8500/v1/health/service/hello | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    s = e["Service"]
    print(e["Node"]["Node"], s["ID"], s["Meta"].get("version"), ",".join(sorted(s["Tags"])), " ".join("%s=%s" % (c["CheckID"], c["Status"]) for c in e["Checks"] if c["ServiceID"]))'`);
  return out.split('\n').filter(Boolean).sort();
}

/** Polls Consul until `stop()`; returns every distinct state line seen. */
function watchConsul(): { stop(): Promise<string[]> } {
  const seen = new Set<string>();
  let on = true;
  const loop = (async () => {
    while (on) {
      for (const l of await consulHealth()) seen.add(l);
      await new Promise((r) => setTimeout(r, 300));
    }
  })();
  return { async stop() { on = false; await loop; return [...seen]; } };
}

beforeAll(async () => {
  if (!existsSync(CONSUL)) await execa(join(ROOT, 'scripts/fetch-consul'));
  lab = await withLab(LAB, 4);
  work = mkdtempSync(join(tmpdir(), 'rtctl-e2e-svc-'));
  mkdirSync(join(work, 'hello'));
  mkdirSync(join(work, '.rtctl/secrets'), { recursive: true });
  writeFileSync(join(work, '.rtctl/secrets/hello-token'), `tok-${Math.random().toString(36).slice(2)}`, { mode: 0o600 });
  copyFileSync(join(ROOT, 'examples/hello/hello.py'), join(work, 'hello/hello-1.0.0.py'));
  makeRelease('2.0.0');
  makeRelease('3.0.0', false);
  makeRelease('4.0.0');
}, 120_000);

afterAll(async () => {
  await teardownLab(LAB);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('services on the lab', () => {
  it('first apply: HAProxy and 3 hardened instances; the next plan has nothing to do', async () => {
    writePlatform('1.0.0');
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.all).toBe(0);
    for (const h of ['h2', 'h3', 'h4']) expect(await instance(h)).toBe('1.0.0\nactive');
    const seen = new Set<string>();
    const greetings = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const body = (await (await fetch(lbUrl())).json()) as { host: string; greeting: string };
      seen.add(body.host);
      greetings.add(body.greeting);
    }
    expect([...seen].sort()).toEqual(['h2', 'h3', 'h4']);
    // The example service reads its settings from Consul KV (platform.yaml's config section).
    expect([...greetings]).toEqual(['hello from Consul KV']);
    const again = await rtctl(['plan', '--detailed-exitcode']);
    expect(again.code, again.all).toBe(0);
  }, 300_000);

  it('systemd-analyze security rates the instance OK or better; it runs unprivileged and sandboxed', async () => {
    const out = await root('h2', 'systemd-analyze security hello@8080.service | tail -1; p=$(systemctl show -p MainPID --value hello@8080.service); ps -o user= -p $p; grep -E "^(NoNewPrivs|Seccomp|CapEff):" /proc/$p/status; stat -c "%a %U" /etc/hello/env');
    const m = /exposure level for hello@8080\.service: ([0-9.]+) (\S+)/.exec(out);
    expect(m, out).toBeTruthy();
    process.stderr.write(`[services e2e] systemd-analyze security: ${m![1]} ${m![2]}\n`);
    expect(Number(m![1])).toBeLessThan(2.0);
    expect(['OK', 'SAFE', 'PERFECTLY']).toContain(m![2]);
    expect(out).toContain('\nhello\n');
    expect(out).toMatch(/NoNewPrivs:\s+1/);
    expect(out).toMatch(/Seccomp:\s+2/);
    expect(out).toMatch(/CapEff:\s+0+\n/);
    expect(out).toMatch(/600 root$/);
  }, 60_000);

  it('each instance is registered in Consul with its health check, version and tags', async () => {
    const want = ['h2', 'h3', 'h4'].map((h) => `${h} hello-8080 1.0.0 http hello-8080-check=passing`);
    // The agents sync their registrations to the catalog shortly after their reload.
    let got = await consulHealth();
    for (let i = 0; i < 20 && JSON.stringify(got) !== JSON.stringify(want); i++) {
      await new Promise((r) => setTimeout(r, 500));
      got = await consulHealth();
    }
    expect(got).toEqual(want);
  }, 60_000);

  it('a new version rolls out over 3 instances on 3 hosts with zero failed requests (each in Consul maintenance while drained)', async () => {
    writePlatform('2.0.0');
    const consul = watchConsul();
    const { result: r, stats } = await underLoad(() => rtctl(['apply', '--auto-approve']));
    const states = await consul.stop();
    for (const h of ['h2', 'h3', 'h4']) expect(states.some((l) => l.startsWith(`${h} hello-8080 `) && l.includes('_service_maintenance:hello-8080=critical')), states.join('\n')).toBe(true);
    expect(await consulHealth()).toEqual(['h2', 'h3', 'h4'].map((h) => `${h} hello-8080 2.0.0 http hello-8080-check=passing`));
    expect(r.code, r.all).toBe(0);
    expect(stats.failed, stats.samples.join('; ')).toBe(0);
    expect(stats.sent).toBeGreaterThan(100);
    expect(stats.versions['2.0.0']).toBeGreaterThan(0);
    for (const h of ['h2', 'h3', 'h4']) expect(await instance(h)).toBe('2.0.0\nactive');
    // Batches in order: h2 before h3 before h4.
    const order = ['h2', 'h3', 'h4'].map((h) => r.out.indexOf(`${h} ~ exec:service-hello@8080`));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect((await lbServers()).sort()).toEqual(['h2-8080 2 0', 'h3-8080 2 0', 'h4-8080 2 0']);
  }, 180_000);

  it('a version whose health check never passes stops after the first batch and is rolled back; the service keeps answering', async () => {
    writePlatform('3.0.0');
    const { result: r, stats } = await underLoad(() => rtctl(['apply', '--auto-approve']));
    expect(r.code, r.all).not.toBe(0);
    expect(r.err).toContain('h2 hello@8080: FAILED: health check (http:/health) did not pass 2 time(s) in a row within 8s; last result: GET http://127.0.0.1:8080/health answered: HTTP/1.1 503 Service Unavailable');
    expect(r.err).toContain('h2 hello@8080: last log lines of hello@8080.service:');
    expect(r.err).toContain('h2 hello@8080: rolled back: healthy on 2.0.0 and back in rotation');
    // h2's change is listed as not done because it failed (and was rolled back); h3 and h4 were never touched.
    expect(r.err).toMatch(/Not done: h2 exec:service-hello@8080, .*h3 exec:service-hello@8080, .*h4 exec:service-hello@8080/);
    expect(stats.failed, stats.samples.join('; ')).toBe(0);
    expect(stats.versions['3.0.0']).toBeUndefined();
    for (const h of ['h2', 'h3', 'h4']) expect(await instance(h)).toBe('2.0.0\nactive');
    expect((await lbServers()).sort()).toEqual(['h2-8080 2 0', 'h3-8080 2 0', 'h4-8080 2 0']);
  }, 180_000);

  it('kill -9 of an instance: systemd starts it again; Consul marks it critical meanwhile', async () => {
    const before = await root('h3', 'systemctl show -p MainPID --value hello@8080.service');
    const consul = watchConsul();
    await root('h3', 'kill -9 $(systemctl show -p MainPID --value hello@8080.service)');
    let after = before;
    for (let i = 0; i < 30 && (after === before || !(Number(after) > 0)); i++) {
      await new Promise((r) => setTimeout(r, 500));
      after = await root('h3', 'systemctl is-active -q hello@8080.service && systemctl show -p MainPID --value hello@8080.service');
    }
    expect(after).not.toBe(before);
    expect(Number(after)).toBeGreaterThan(0);
    expect(await root('h3', 'systemctl show -p NRestarts --value hello@8080.service')).toBe('1');
    let passing = false;
    for (let i = 0; i < 20 && !passing; i++) {
      await new Promise((r) => setTimeout(r, 500));
      passing = (await consulHealth()).includes('h3 hello-8080 2.0.0 http hello-8080-check=passing');
    }
    const states = await consul.stop();
    expect(states, states.join('\n')).toContain('h3 hello-8080 2.0.0 http hello-8080-check=critical');
    expect(passing).toBe(true);
  }, 60_000);

  it('rtctl restart: a rolling restart with no change and no failed request', async () => {
    writePlatform('2.0.0');
    const pids = await Promise.all(['h2', 'h3', 'h4'].map((h) => root(h, 'systemctl show -p MainPID --value hello@8080.service')));
    const { result: r, stats } = await underLoad(() => serviceCmd('restart'));
    expect(r.code, r.all).toBe(0);
    expect(stats.failed, stats.samples.join('; ')).toBe(0);
    const now = await Promise.all(['h2', 'h3', 'h4'].map((h) => root(h, 'systemctl show -p MainPID --value hello@8080.service')));
    now.forEach((p, i) => expect(p).not.toBe(pids[i]));
    for (const h of ['h2', 'h3', 'h4']) expect(await instance(h)).toBe('2.0.0\nactive');
  }, 180_000);

  it('rtctl rollback: back to the previous release, rolling, no failed request', async () => {
    const { result: r, stats } = await underLoad(() => serviceCmd('rollback'));
    expect(r.code, r.all).toBe(0);
    expect(stats.failed, stats.samples.join('; ')).toBe(0);
    for (const h of ['h2', 'h3', 'h4']) expect(await instance(h)).toBe('1.0.0\nactive');
    expect(r.out).toContain('the next `rtctl apply` rolls forward to it again');
  }, 180_000);

  it('rtctl killed mid-rollout (its SSH sessions die): the instance in flight finishes on its host; the next apply completes', { timeout: 240_000 }, async () => {
    writePlatform('4.0.0');
    const child = execa(RTCTL, ['apply', '--auto-approve'], { cwd: work, reject: false, env: { NO_COLOR: '1' }, stdin: 'ignore' });
    let out = '';
    child.stdout?.on('data', (d: Buffer) => { out += d.toString(); });
    for (let i = 0; i < 200 && !out.includes('h2 ~ exec:service-hello@8080'); i++) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 500));
    child.kill('SIGKILL');
    await child;
    // The rollout of h2's instance goes on in its transient unit and ends undrained and healthy.
    let h2 = '';
    for (let i = 0; i < 60 && h2 !== '4.0.0\nactive'; i++) {
      await new Promise((r) => setTimeout(r, 500));
      h2 = await instance('h2');
    }
    expect(h2).toBe('4.0.0\nactive');
    expect(await instance('h3')).toBe('1.0.0\nactive');
    const unlock = await rtctl(['unlock', 'h1', 'h2', 'h3', 'h4']);
    expect(unlock.code, unlock.all).toBe(0);
    // The Consul recipe's platform-wide lock (Consul KV) outlives the killed rtctl (until its session's TTL runs
    // out): the next apply is refused, naming the run; `unlock --cluster` removes it for that run id only.
    const run = /"run":"([0-9a-f]+)"/.exec(unlock.out)?.[1];
    expect(run, unlock.out).toBeDefined();
    // The dead apply's session: TTL 30 s and no node checks (a Consul restart on its server must not drop a live lock).
    const sessions = JSON.parse(await root('h2', 'curl -sf -H "X-Consul-Token: $(cat /etc/consul.d/management.token)" http://127.0.0.1:8500/v1/session/list')) as { Name: string; TTL: string; Checks?: string[] | null; NodeChecks?: string[] | null }[];
    const mine = sessions.find((x) => x.Name === `rtctl apply ${run}`);
    expect(mine, JSON.stringify(sessions)).toBeDefined();
    expect(mine!.TTL).toBe('30s');
    expect([...(mine!.Checks ?? []), ...(mine!.NodeChecks ?? [])]).toEqual([]);
    const refused = await rtctl(['apply', '--auto-approve']);
    expect(refused.code, refused.all).not.toBe(0);
    expect(refused.err).toContain(`locked in Consul (rtctl/apply-lock) by root@`);
    expect(refused.err).toContain(`rtctl unlock --cluster ${run}`);
    const wrong = await rtctl(['unlock', '--cluster', 'deadbeef']);
    expect(wrong.code).not.toBe(0);
    expect(wrong.err).toContain(`held by run ${run}`);
    expect(wrong.err).toContain('nothing removed');
    const forced = await rtctl(['unlock', '--cluster', run!]);
    expect(forced.code, forced.all).toBe(0);
    expect(forced.out).toContain(`consul: removed lock rtctl/apply-lock of run ${run}`);
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.all).toBe(0);
    expect(r.out).not.toContain('h2 ~ exec:service-hello@8080');
    for (const h of ['h2', 'h3', 'h4']) expect(await instance(h)).toBe('4.0.0\nactive');
    expect((await lbServers()).sort()).toEqual(['h2-8080 2 0', 'h3-8080 2 0', 'h4-8080 2 0']);
  });

  it('scaling: a new instance joins without touching the others; a surplus one is drained, then removed', async () => {
    const more = (s: string) => s
      .replace('      - { hosts: [app], ports: [8080] }', '      - { hosts: [app], ports: [8080] }\n      - { hosts: [h2], ports: [8081] }')
      .replace(/(        server h4-8080 \S+:8080)/, `$1\n        server h2-8081 ${addr('h2')}:8081`);
    writePlatform('4.0.0', more);
    const pids = await Promise.all(['h2', 'h3', 'h4'].map((h) => root(h, 'systemctl show -p MainPID --value hello@8080.service')));
    const up = await rtctl(['apply', '--auto-approve']);
    expect(up.code, up.all).toBe(0);
    expect(up.out).toContain('h2 ~ exec:service-hello@8081');
    expect(up.out).not.toContain('exec:service-hello@8080');
    expect(await root('h2', 'systemctl is-active hello@8081.service')).toBe('active');
    expect(await consulHealth()).toContain('h2 hello-8081 4.0.0 http hello-8081-check=passing');
    const same = await Promise.all(['h2', 'h3', 'h4'].map((h) => root(h, 'systemctl show -p MainPID --value hello@8080.service')));
    expect(same).toEqual(pids);

    // Fewer: the LB keeps its server line, so the drain through the Runtime API is visible (admin state 8 = drain).
    writePlatform('4.0.0', (s) => more(s).replace('      - { hosts: [h2], ports: [8081] }\n', ''));
    const { result: down, stats } = await underLoad(() => rtctl(['apply', '--auto-approve']));
    expect(down.code, down.all).toBe(0);
    expect(stats.failed, stats.samples.join('; ')).toBe(0);
    expect(await root('h2', 'systemctl is-active hello@8081.service; systemctl is-enabled hello@8081.service; ls /opt/hello/instances')).toBe('inactive\ndisabled\n8080');
    expect(await root('h2', 'cat /run/rtctl-services/rtctl-rollout-hello-8081.log')).toContain('h2 hello@8081: surplus instance: draining, stopping and removing it');
    expect((await lbServers()).find((l) => l.startsWith('h2-8081 '))).toMatch(/^h2-8081 \d 8$/);
    expect((await consulHealth()).filter((l) => l.includes('hello-8081'))).toEqual([]);
  }, 180_000);

  it('bad input: a port clash is reported at its line and nothing on any host changes', async () => {
    writePlatform('4.0.0', (s) => s.replace('      - { hosts: [app], ports: [8080] }', '      - { hosts: [app], ports: [8080] }\n      - { hosts: [h3], ports: [8080] }'));
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/platform\.yaml:\d+:\d+: services\/0\/instances\/1\/ports\/0: port 8080 on h3 is already used by services\/0\/instances\/0\/ports\/0/);
    expect(r.err).not.toMatch(/\n\s+at /);
  }, 60_000);
});
