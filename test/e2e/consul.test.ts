/**
 * Consul end to end on a 5-host lab: 3 servers and 2 clients from bare hosts, secure by default (gossip key,
 * RPC TLS, ACLs with default deny), discovery through Consul DNS, KV delivered to a running service without a
 * restart, a lost server, and `rtctl status`. The Consul binary is Debian 11's 1.8.7 (scripts/fetch-consul).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ssh, teardownLab, withLab, type LabInfo } from './helpers/lab.js';
import { cliIn } from './helpers/cli.js';
import { SshExecutor } from '../../src/executors/ssh.js';
import { ConsulLock } from '../../src/apply/consul-lock.js';

const LAB = 'cnx';
const ROOT = resolve(import.meta.dirname, '../..');
const RTCTL = join(ROOT, 'bin/rtctl');
const CONSUL = join(ROOT, '.rtctl/artifacts/consul-1.8.7');
let lab: LabInfo;
let work: string;

const rtctl = cliIn(() => work);

const addr = (h: string) => lab.hosts.find((x) => x.name === h)!.address;

/** A tiny service that serves the KV prefix file the watch writes, re-reading it on SIGHUP (no restart). */
const KVDEMO = `#!/usr/bin/python3
import base64, json, os, signal, socket
from http.server import BaseHTTPRequestHandler, HTTPServer
CFG = {}
def load(*_):
    global CFG
    try:
        CFG = {e["key"].split("/")[-1]: base64.b64decode(e["value"] or "").decode() for e in json.load(open("/etc/kvdemo/config.json"))}
    except (OSError, ValueError):
        CFG = {}
signal.signal(signal.SIGHUP, load)
load()
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "config": CFG}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
HTTPServer(("0.0.0.0", 8081), H).serve_forever()
`;

/** `lb`: HAProxy on h3 sending port 80 to the kvdemo instances it finds in Consul DNS; `extraApp`: h2 runs an instance too. */
function platform(greeting: string, opts: { lb?: boolean; extraApp?: boolean } = {}): string {
  const vip = `${lab.gateway.replace(/\.1$/, '.100')}/24`;
  const lb = opts.lb
    ? `loadbalancer:
  hosts: [h2, h3]
  vip: ${vip}
  listeners:
    - { name: kv, port: 80, to: kvdemo }
gateway:
  engine: haproxy
  hosts: [h2, h3]
  services:
    kvdemo: { consul: kvdemo, health: { path: /, interval: 1s, fall: 2, rise: 2 } }
  routes: []
`
    : '';
  const sha = createHash('sha256').update(readFileSync(CONSUL)).digest('hex');
  return `version: 1
name: consul-e2e
defaults: { user: deploy, become: true, key: ${lab.keyPath}, known_hosts: ${lab.knownHostsPath} }
hosts:
${lab.hosts.map((h, i) => `  - { name: ${h.name}, address: ${h.address}, labels: [${i < 3 ? 'consul-server' : 'app'}${opts.extraApp && h.name === 'h2' ? ', app' : ''}] }`).join('\n')}
artifacts:
  consul: { path: ${CONSUL}, sha256: ${sha}, version: 1.8.7 }
packages:
  - { name: python3, hosts: [app] }
  - { name: dnsutils, hosts: [app] }
directories:
  - { path: /etc/kvdemo, hosts: [app] }
files:
  - path: /usr/local/bin/kvdemo
    mode: "0755"
    hosts: [app]
    content: |
${KVDEMO.split('\n').map((l) => `      ${l}`).join('\n')}
units:
  - name: kvdemo.service
    hosts: [app]
    content: |
      [Service]
      ExecStart=/usr/local/bin/kvdemo
      Restart=on-failure
      [Install]
      WantedBy=multi-user.target
consul:
  artifact: consul
  servers: [consul-server]
  register:
    - { name: kvdemo, port: 8081, tags: [demo], check: { http: /, interval: 2s }, hosts: [app] }
  watches:
    - { name: kvdemo, prefix: config/kvdemo/, unit: kvdemo.service, file: /etc/kvdemo/config.json, hosts: [app] }
config:
  global: { log_level: info }
  services:
    kvdemo: { greeting: "${greeting}", token: "\${env:KVDEMO_SECRET}" }
${lb}`;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

const kvdemo = async (h: string) => JSON.parse(await (await fetch(`http://${addr(h)}:8081/`, { signal: AbortSignal.timeout(3000) })).text()) as { pid: number; config: Record<string, string> };
const srv = async (h: string) => (await ssh(lab, h, 'dig @127.0.0.1 -p 8600 _kvdemo._tcp.service.consul SRV +short')).stdout.split('\n').filter(Boolean).sort();

beforeAll(async () => {
  if (!existsSync(CONSUL)) await execa(join(ROOT, 'scripts/fetch-consul'));
  lab = await withLab(LAB, 5);
  work = mkdtempSync(join(tmpdir(), 'rtctl-consul-'));
  process.env.KVDEMO_SECRET = 's3cret-kv-value';
  writeFileSync(join(work, 'platform.yaml'), platform('one'));
});

afterAll(async () => {
  // RTCTL_E2E_KEEP=1 keeps the lab and work dir for debugging (remove with `rtctl lab down --name cnx`).
  if (process.env.RTCTL_E2E_KEEP === '1') return void process.stderr.write(`kept lab ${LAB} and ${work}\n`);
  await teardownLab(LAB);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('consul on a real lab', () => {
  it('forms a 3-server cluster with 2 clients from bare hosts', async () => {
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.all).toBe(0);
    // New checks start critical until their first pass: wait for a healthy status.
    const st = await until('a healthy status', async () => {
      const r = await rtctl(['status', '--json']);
      return r.code === 0 ? r : undefined;
    });
    const s = JSON.parse(st.out);
    expect(s.leader).toMatch(/^h[123]$/);
    expect(s.members.map((m: { node: string; status: string; type: string }) => `${m.node} ${m.type} ${m.status}`).sort()).toEqual([
      'h1 server alive', 'h2 server alive', 'h3 server alive', 'h4 client alive', 'h5 client alive',
    ]);
    expect(s.voters.filter((v: { voter: boolean }) => v.voter)).toHaveLength(3);
  });

  it('plans no changes on the second run', async () => {
    const r = await rtctl(['plan', '--detailed-exitcode']);
    expect(r.code, r.all).toBe(0);
  });

  it('keeps generated secrets on the operator side, 0600, out of every output', async () => {
    const dir = join(work, '.rtctl/secrets/consul');
    for (const f of ['gossip.key', 'management.token', 'ca.pem', 'agent-h4.token']) expect((statSync(join(dir, f)).mode & 0o777).toString(8)).toBe('600');
    const mgmt = readFileSync(join(dir, 'management.token'), 'utf8');
    const plan = await rtctl(['plan', '--json']);
    for (const secret of [mgmt, readFileSync(join(dir, 'gossip.key'), 'utf8'), 's3cret-kv-value']) expect(plan.all).not.toContain(secret);
    // The CA key never reaches a host: only the certificate is there.
    expect((await ssh(lab, 'h1', 'sudo grep -l "PRIVATE KEY" /etc/consul.d/tls/ca.pem; echo $?')).stdout.trim()).toBe('1');
  });

  it('resolves a registered service through Consul DNS (SRV), and drops it when its check fails', async () => {
    const answers = await until('two SRV answers', async () => ((await srv('h4')).length === 2 ? srv('h4') : undefined));
    for (const a of answers) expect(a).toMatch(/^1 1 8081 [0-9a-f]+\.addr\.dc1\.consul\.$|^1 1 8081 h[45]\.node\.dc1\.consul\.$/);
    await ssh(lab, 'h5', 'sudo systemctl stop kvdemo');
    try {
      expect(await until('one SRV answer', async () => ((await srv('h4')).length === 1 ? srv('h4') : undefined))).toHaveLength(1);
      const st = await rtctl(['status']);
      expect(st.code).toBe(2);
      expect(st.out).toMatch(/h5\s+kvdemo-8081-check \(kvdemo\) critical/);
    } finally {
      await ssh(lab, 'h5', 'sudo systemctl start kvdemo');
    }
  });

  it('denies anonymous writes and plaintext RPC', async () => {
    const w = await ssh(lab, 'h4', 'consul kv put rogue value');
    expect(w.exitCode).not.toBe(0);
    expect(w.stderr).toMatch(/403|Permission denied/);
    await ssh(lab, 'h4', `bash -c 'exec 3<>/dev/tcp/${addr('h1')}/8300; printf "\\x00" >&3; sleep 1; cat <&3 >/dev/null'`);
    const log = await ssh(lab, 'h1', 'sudo journalctl -u consul --no-pager -o cat | grep -c "Non-TLS connection attempted with VerifyIncoming set"');
    expect(Number(log.stdout.trim())).toBeGreaterThan(0);
  });

  it('delivers a KV change to the running service without a restart', async () => {
    const before = await until('kvdemo config', async () => {
      const v = await kvdemo('h4').catch(() => undefined);
      return v?.config.greeting === 'one' ? v : undefined;
    });
    expect(before.config.token).toBe('s3cret-kv-value');
    writeFileSync(join(work, 'platform.yaml'), platform('two'));
    const plan = await rtctl(['plan']);
    expect(plan.out).toContain('~ exec:consul-kv:config/kvdemo/greeting  set config/kvdemo/greeting = "two"; different');
    expect(plan.out).toContain('Plan: 0 to create, 1 to change, 0 to destroy, 0 to restart, on 1 of 5 hosts.');
    expect((await rtctl(['apply', '--auto-approve'])).code).toBe(0);
    const after = await until('kvdemo greeting two', async () => {
      const v = await kvdemo('h4').catch(() => undefined);
      return v?.config.greeting === 'two' ? v : undefined;
    });
    expect(after.pid).toBe(before.pid);
    expect((await rtctl(['plan', '--detailed-exitcode'])).code).toBe(0);
  });

  it('keeps a leader when a server stops, and status shows the loss', async () => {
    await ssh(lab, 'h2', 'sudo systemctl stop consul');
    try {
      // If h2 was the leader, the other two elect a new one within seconds.
      const st = await until('h2 failed and a leader in status', async () => {
        const r = await rtctl(['status']);
        return /h2\s+\S+\s+server\s+(failed|left)/.test(r.out) && /leader h[13]/.test(r.out) ? r : undefined;
      });
      expect(st.code).toBe(2);
      expect(st.out).toMatch(/leader h[13]/);
    } finally {
      await ssh(lab, 'h2', 'sudo systemctl start consul');
    }
  });

  it('takes the apply lock in Consul: an apply from another machine is refused, naming it', async () => {
    // Another machine's apply, as rtctl takes it: a session holding rtctl/apply-lock.
    const hold = await ssh(lab, 'h2', `sudo sh -c 'tok=$(cat /etc/consul.d/management.token); sid=$(curl -sf -H "X-Consul-Token: $tok" -X PUT -d "{\\"TTL\\":\\"60s\\",\\"Behavior\\":\\"delete\\"}" http://127.0.0.1:8500/v1/session/create | sed -n "s/.*\\"ID\\": *\\"\\([^\\"]*\\)\\".*/\\1/p"); curl -sf -H "X-Consul-Token: $tok" -X PUT -d "{\\"by\\":\\"ci@runner-7\\",\\"pid\\":4242,\\"since\\":\\"2026-12-04T10:00:00Z\\",\\"run\\":\\"ci000001\\"}" "http://127.0.0.1:8500/v1/kv/rtctl/apply-lock?acquire=$sid" >/dev/null; echo $sid'`);
    const sid = hold.stdout.trim();
    expect(sid).toMatch(/^[0-9a-f-]{36}$/);
    try {
      const r = await rtctl(['apply', '--auto-approve']);
      expect(r.code).toBe(1);
      expect(r.err).toContain('error: the platform is locked in Consul (rtctl/apply-lock) by ci@runner-7 (pid 4242, run ci000001) since 2026-12-04T10:00:00Z');
    } finally {
      await ssh(lab, 'h2', `sudo sh -c 'curl -sf -H "X-Consul-Token: $(cat /etc/consul.d/management.token)" -X PUT http://127.0.0.1:8500/v1/session/destroy/${sid} >/dev/null'`);
    }
    // Destroying a session that held the key puts the key in Consul's lock-delay (15 s by default): the next
    // apply waits it out and takes the lock (before, it went on without the cluster lock, silently).
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.all).toBe(0);
    expect(r.err).not.toContain('no cluster-wide lock');
    // rtctl released its own lock when it finished.
    expect((await ssh(lab, 'h1', `sudo sh -c 'curl -s -o /dev/null -w "%{http_code}" -H "X-Consul-Token: $(cat /etc/consul.d/management.token)" http://127.0.0.1:8500/v1/kv/rtctl/apply-lock'`)).stdout).toBe('404');
  });

  it('the apply lock: its session has no node checks; a lost session is said once, and the lock can be taken again', async () => {
    const ex = new SshExecutor({ name: 'h1', address: addr('h1'), port: 22, user: 'deploy', become: true, keyFile: lab.keyPath, knownHostsFile: lab.knownHostsPath, connectTimeoutMs: 10_000, commandTimeoutMs: 30_000 });
    const warnings: string[] = [];
    try {
      const lock = await ConsulLock.acquire([ex], { by: 'e2e@test', pid: 1, since: new Date().toISOString(), run: 'e2e00001' }, (l) => warnings.push(l));
      expect(lock, warnings.join('\n')).toBeDefined();
      const token = 'X-Consul-Token: $(cat /etc/consul.d/management.token)';
      const sessions = JSON.parse((await ssh(lab, 'h1', `sudo sh -c 'curl -sf -H "${token}" http://127.0.0.1:8500/v1/session/list'`)).stdout) as { ID: string; Name: string; TTL: string; Checks?: string[] | null; NodeChecks?: string[] | null }[];
      const mine = sessions.find((x) => x.Name === 'rtctl apply e2e00001')!;
      expect(mine.TTL).toBe('30s');
      expect([...(mine.Checks ?? []), ...(mine.NodeChecks ?? [])]).toEqual([]);
      await lock!.renew();
      expect(lock!.lost).toBe(false);
      // Consul drops the session (as when it expires): the next renewal sees 404 and says so, once.
      await ssh(lab, 'h1', `sudo sh -c 'curl -sf -X PUT -H "${token}" http://127.0.0.1:8500/v1/session/destroy/${mine.ID} >/dev/null'`);
      await lock!.renew();
      await lock!.renew();
      expect(lock!.lost).toBe(true);
      expect(warnings).toEqual([expect.stringContaining('warning: the cluster-wide lock in Consul (rtctl/apply-lock) was lost')]);
      await lock!.release();
    } finally {
      await ex.close();
    }
    expect((await rtctl(['apply', '--auto-approve'])).code).toBe(0);
  });

  it('HAProxy finds instances in Consul DNS, and a new instance needs no reload', async () => {
    writeFileSync(join(work, 'platform.yaml'), platform('two', { lb: true }));
    expect((await rtctl(['apply', '--auto-approve'])).code).toBe(0);
    const via = async () => JSON.parse(await (await fetch(`http://${addr('h3')}/`, { signal: AbortSignal.timeout(3000) })).text()) as { host: string };
    const seen = async (n: number) => {
      const hosts = new Set<string>();
      for (let i = 0; i < n; i++) hosts.add((await via().catch(() => ({ host: 'error' }))).host);
      return hosts;
    };
    await until('h4 and h5 behind HAProxy', async () => ((await seen(10)).has('h5') ? true : undefined));
    expect([...(await seen(10))].sort()).toEqual(['h4', 'h5']);
    const worker = async () => (await ssh(lab, 'h3', 'pgrep -P "$(systemctl show -p MainPID --value haproxy)" haproxy')).stdout.trim();
    const before = await worker();
    expect(before).toMatch(/^\d+$/);

    writeFileSync(join(work, 'platform.yaml'), platform('two', { lb: true, extraApp: true }));
    const plan = await rtctl(['plan']);
    expect(plan.out).toContain('+ file:/etc/consul.d/service-kvdemo-8081.json');
    expect(plan.out).not.toContain('haproxy');
    expect((await rtctl(['apply', '--auto-approve'])).code).toBe(0);
    await until('h2 behind HAProxy', async () => ((await seen(10)).has('h2') ? true : undefined));
    expect(await worker()).toBe(before);
  });

  it('rejects bad consul input at its line, contacting no host', async () => {
    writeFileSync(join(work, 'bad.yaml'), platform('x').replace('servers: [consul-server]', 'servers: [h1, h2]'));
    const r = await rtctl(['plan', '-f', 'bad.yaml']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/bad\.yaml:\d+:\d+: consul\/servers: select 3 or 5 servers \(a Raft quorum that survives a failure\), not 2/);
  });
});
