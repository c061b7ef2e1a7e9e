/**
 * The front door end to end on a 5-host lab: h1 and h2 run HAProxy (load balancer + API gateway, engine haproxy)
 * and keepalived sharing a virtual IP; h3–h5 run three instances of a small HTTP service. The example platform
 * (examples/frontdoor.platform.yaml, pointed at this lab) is applied through the real CLI, then: routing by path
 * and host through the VIP, 401/429, JWT, TLS against the internal CA, certificate renewal in `plan`, a hitless
 * reload under load, a config failing `haproxy -c` never installed, failover of the VIP when HAProxy dies on the
 * holder (failed requests counted), and the Kong rendering of the same platform passing its checks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ssh, teardownLab, withLab, type LabInfo } from './helpers/lab.js';
import { cliIn } from './helpers/cli.js';

const LAB = 'fdr';
const ROOT = resolve(import.meta.dirname, '../..');
const API_KEY = `ak${Math.random().toString(36).slice(2)}x`;
const JWT_SECRET = `js${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
let lab: LabInfo;
let work: string;

const rtctl = cliIn(() => work);

const prefix = () => lab.gateway.replace(/\.1$/, '.');
const vip = () => `${prefix()}100`;
function writePlatform(edit: (s: string) => string = (s) => s) {
  const s = readFileSync(join(ROOT, 'examples/frontdoor.platform.yaml'), 'utf8')
    .replaceAll('/var/lib/rtctl/lab/default/', `${lab.dir}/`)
    .replaceAll('198.18.1.', prefix());
  writeFileSync(join(work, 'platform.yaml'), edit(s));
}

/** One request through the VIP from h3 (inside the lab network) with curl: status and body. */
async function curl(path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const h = Object.entries(headers).map(([k, v]) => `-H '${k}: ${v}'`).join(' ');
  const r = await ssh(lab, 'h3', `curl -s -m 3 -w '\\n%{http_code}' ${h} http://${vip()}${path}`);
  const lines = r.stdout.split('\n');
  return { status: Number(lines.pop()), body: lines.join('\n') };
}

/** A bounded load loop on h3: N sequential requests (each ≤ 1 s), one status per line. */
function loadLoop(n: number, sleep = '0'): string {
  return `i=0; while [ $i -lt ${n} ]; do curl -s -o /dev/null -m 1 -w '%{http_code}\\n' http://${vip()}/web/whoami; sleep ${sleep}; i=$((i+1)); done`;
}
const failures = (out: string) => out.split('\n').filter((l) => l.trim() !== '' && l.trim() !== '200').length;

function jwt(secret: string, iss: string, expInSec: number): string {
  const b = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b({ alg: 'HS256', typ: 'JWT' })}.${b({ iss, exp: Math.floor(Date.now() / 1000) + expInSec })}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

async function vipHolder(): Promise<string | undefined> {
  for (const h of ['h1', 'h2']) if ((await ssh(lab, h, 'ip -4 -o addr show dev eth0')).stdout.includes(` ${vip()}/`)) return h;
  return undefined;
}

beforeAll(async () => {
  lab = await withLab(LAB, 5);
  work = mkdtempSync(join(tmpdir(), 'rtctl-e2e-fdr-'));
  cpSync(join(ROOT, 'examples'), join(work, 'examples'), { recursive: true });
  mkdirSync(join(work, '.rtctl/secrets/frontdoor'), { recursive: true });
  writeFileSync(join(work, '.rtctl/secrets/frontdoor/alice.key'), API_KEY, { mode: 0o600 });
  writeFileSync(join(work, '.rtctl/secrets/frontdoor/jwt-bob'), JWT_SECRET, { mode: 0o600 });
  writePlatform();
}, 120_000);

afterAll(async () => {
  await teardownLab(LAB);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('front door on a real lab', () => {
  it('applies: HAProxy + keepalived on h1/h2, three service instances on h3-h5; a second plan has no changes', async () => {
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.all).toBe(0);
    expect(r.all).not.toContain(API_KEY);
    expect(r.all).not.toContain(JWT_SECRET);
    const again = await rtctl(['plan', '--detailed-exitcode']);
    expect(again.code, again.all).toBe(0);
    expect(again.out).toContain('No changes. 5 hosts are in sync.');
  });

  it('client → VIP → HAProxy → gateway → 3 instances, routed by path and by host', async () => {
    // The VIP comes up within a few VRRP adverts after keepalived starts. If h2's keepalived started first it
    // holds the VIP until h1 (higher priority) preempts it, with a moment in between where neither has it
    // (seen in CI): wait for h1.
    for (let i = 0; i < 40 && (await vipHolder()) !== 'h1'; i++) await new Promise((r) => setTimeout(r, 500));
    expect(await vipHolder()).toBe('h1');
    const seen = new Set<string>();
    for (let i = 0; i < 9; i++) {
      const r = await curl('/web/whoami');
      expect(r.status).toBe(200);
      seen.add(r.body.trim());
    }
    expect([...seen].sort()).toEqual(['served by h3', 'served by h4', 'served by h5']);
    // Host docs.lab + /docs/ → the docs service (h5 only).
    for (let i = 0; i < 3; i++) expect((await curl('/docs/whoami', { Host: 'docs.lab' })).body.trim()).toBe('served by h5');
    expect((await curl('/nothing/here')).status).toBe(404);
    // Stats and metrics on the LB host's own address, not on the VIP.
    expect((await ssh(lab, 'h3', `curl -s -m 3 http://${prefix()}11:8404/metrics | grep -c '^haproxy_'`)).stdout.trim()).not.toBe('0');
    expect((await ssh(lab, 'h3', `curl -s -m 3 -o /dev/null -w '%{http_code}' http://${vip()}:8404/metrics`)).stdout).toBe('000');
  });

  it('API keys: missing or wrong → 401, right → 200; over the rate limit → 429', async () => {
    expect(await curl('/web/whoami', { Host: 'api.lab' })).toEqual({ status: 401, body: '{"message":"No API key found in request"}' });
    expect(await curl('/web/whoami', { Host: 'api.lab', apikey: 'wrong' })).toEqual({ status: 401, body: '{"message":"Invalid authentication credentials"}' });
    const r = await curl('/web/whoami', { Host: 'api.lab', apikey: API_KEY });
    expect(r.status).toBe(200);
    // 5 per minute per consumer, counted on each gateway host (2 of them): 12 more requests must hit 429.
    const codes = (await ssh(lab, 'h3', `for i in $(seq 1 12); do curl -s -o /dev/null -m 3 -w '%{http_code} ' -H 'Host: api.lab' -H 'apikey: ${API_KEY}' http://${vip()}/web/whoami; done`)).stdout.trim().split(' ');
    expect(codes).toContain('429');
    expect(codes.filter((c) => c !== '200' && c !== '429')).toEqual([]);
    // Body size limit (1 KiB) on the same route.
    const big = await ssh(lab, 'h3', `head -c 5000 /dev/zero | curl -s -o /dev/null -m 3 -w '%{http_code}' -X POST --data-binary @- -H 'Host: api.lab' -H 'apikey: ${API_KEY}' http://${vip()}/web/whoami`);
    expect(['413', '429']).toContain(big.stdout);
  });

  it('JWT: valid → 200; expired, bad signature, unknown issuer, missing → 401', async () => {
    const auth = (t: string) => ({ Host: 'jwt.lab', Authorization: `Bearer ${t}` });
    expect((await curl('/docs/whoami', auth(jwt(JWT_SECRET, 'bob-issuer', 300)))).body.trim()).toBe('served by h5');
    expect(await curl('/docs/whoami', auth(jwt(JWT_SECRET, 'bob-issuer', -10)))).toEqual({ status: 401, body: '{"message":"token expired"}' });
    expect((await curl('/docs/whoami', auth(jwt('not-the-secret', 'bob-issuer', 300)))).status).toBe(401);
    expect((await curl('/docs/whoami', auth(jwt(JWT_SECRET, 'someone-else', 300)))).status).toBe(401);
    expect((await curl('/docs/whoami', { Host: 'jwt.lab' })).status).toBe(401);
  });

  it('HTTPS on the VIP verifies against the internal CA', async () => {
    const ca = readFileSync(join(work, '.rtctl/secrets/haproxy/ca.crt'));
    const body = await new Promise<string>((ok, fail) => {
      const req = request({ host: vip(), port: 443, path: '/web/whoami', ca, timeout: 5000 }, (res) => {
        let s = '';
        res.on('data', (d: Buffer) => (s += d.toString()));
        res.on('end', () => ok(`${res.statusCode} ${s.trim()}`));
      });
      req.on('error', fail);
      req.end();
    });
    expect(body).toMatch(/^200 served by h[345]$/);
    // Without the CA the certificate is not trusted.
    const untrusted = await new Promise<string>((ok) => {
      const req = request({ host: vip(), port: 443, path: '/', timeout: 5000 }, () => ok('trusted'));
      req.on('error', (e: NodeJS.ErrnoException) => ok(e.code ?? 'error'));
      req.end();
    });
    expect(untrusted).toMatch(/SELF_SIGNED|UNABLE_TO_GET_ISSUER|UNABLE_TO_VERIFY/);
  });

  it('a certificate due for renewal shows up in plan and is renewed by apply', async () => {
    writePlatform((s) => s.replace('renew_before_days: 30', 'renew_before_days: 100'));
    const plan = await rtctl(['plan']);
    expect(plan.out).toContain('~ file:/etc/haproxy/certs/https.pem');
    expect(plan.out).toMatch(/unit:haproxy\.service {2}reload/);
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.all).toBe(0);
    writePlatform();
    expect((await rtctl(['plan', '--detailed-exitcode'])).code).toBe(0);
  });

  it('a configuration change is a hitless reload: no request fails during it', async () => {
    writePlatform((s) => s.replace('timeouts: { connect: 2s, client: 30s, server: 30s }', 'timeouts: { connect: 3s, client: 30s, server: 30s }'));
    const loop = ssh(lab, 'h3', loadLoop(400), { timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 300));
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.all).toBe(0);
    expect(r.out).toContain('reload haproxy.service');
    // And three more reloads on both hosts while the loop runs.
    for (let i = 0; i < 3; i++) await Promise.all(['h1', 'h2'].map((h) => ssh(lab, h, 'sudo systemctl reload haproxy.service')));
    const out = (await loop).stdout;
    const n = out.split('\n').filter(Boolean).length;
    console.log(`[frontdoor] reload under load: ${failures(out)} failed of ${n} requests`);
    expect(n).toBe(400);
    expect(failures(out)).toBe(0);
  });

  it('a configuration that fails `haproxy -c` is never installed; the running one keeps serving', async () => {
    const before = (await ssh(lab, 'h1', 'sudo sha256sum /etc/haproxy/haproxy.cfg')).stdout;
    writePlatform((s) => s.replace('timeouts: { connect: 2s,', 'timeouts: { connect: 3s,').replace(`servers: [${prefix()}15:8080]`, `servers: [${prefix()}15:99999]`));
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code).not.toBe(0);
    expect(r.all).toContain('check failed (haproxy -c -q -f /etc/haproxy/secrets.cfg -f {})');
    expect((await ssh(lab, 'h1', 'sudo sha256sum /etc/haproxy/haproxy.cfg')).stdout).toBe(before);
    expect((await curl('/web/whoami')).status).toBe(200);
    writePlatform((s) => s.replace('timeouts: { connect: 2s,', 'timeouts: { connect: 3s,'));
    // The failed run owed a reload (recorded before it started); the next apply does it, then all is in sync.
    const owed = await rtctl(['plan']);
    expect(owed.out, owed.all).toContain('Plan: 0 to create, 0 to change, 0 to destroy');
    expect((await rtctl(['apply', '--auto-approve'])).code).toBe(0);
    const again = await rtctl(['plan', '--detailed-exitcode']);
    expect(again.code, again.all).toBe(0);
  });

  it('HAProxy dies on the VIP holder: the VIP moves and requests keep succeeding (failures counted)', async () => {
    expect(await vipHolder()).toBe('h1');
    // ~8 s of requests, 20 per second at most, each given 1 s.
    const loop = ssh(lab, 'h3', loadLoop(160, '0.05'), { timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = Date.now();
    await ssh(lab, 'h1', 'sudo systemctl stop haproxy.service');
    let moved = 0;
    for (let i = 0; i < 40; i++) {
      if ((await vipHolder()) === 'h2') { moved = Date.now() - t0; break; }
      await new Promise((r) => setTimeout(r, 250));
    }
    const out = (await loop).stdout;
    const lines = out.split('\n').filter(Boolean);
    console.log(`[frontdoor] failover: VIP on h2 after ~${moved} ms; ${failures(out)} failed of ${lines.length} requests`);
    expect(moved).toBeGreaterThan(0);
    expect(lines.length).toBe(160);
    // The tail of the loop ran after the move: it must be all successes.
    expect(lines.slice(-20).every((l) => l === '200')).toBe(true);
    expect((await curl('/web/whoami')).status).toBe(200);
    // Heal: HAProxy back on h1 (rtctl's next apply would also start it); the VIP returns to h1.
    await ssh(lab, 'h1', 'sudo systemctl start haproxy.service');
    const plan = await rtctl(['plan', '--detailed-exitcode']);
    expect(plan.code, plan.all).toBe(0);
  });

  it('the Kong rendering of the same platform passes its checks (Kong itself is not run)', async () => {
    writePlatform((s) => s.replace('engine: haproxy', 'engine: kong'));
    const v = await rtctl(['validate']);
    expect(v.code, v.all).toBe(0);
    const plan = await rtctl(['plan']);
    expect(plan.out).toContain('+ file:/etc/kong/kong.yml');
    expect(plan.out).toContain('+ file:/etc/kong/kong.conf');
    expect(plan.out).toContain('admin_listen = 127.0.0.1:8001');
    expect(plan.all).not.toContain(API_KEY);
    writePlatform();
  });
});
