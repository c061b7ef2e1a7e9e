/**
 * The main example, end to end: the repository's platform.yaml (the whole stack; what `scripts/demo` applies)
 * pointed at a 7-host lab `demo`, validated, planned to a file, applied from bare hosts, then a second plan with
 * no changes, and a request through the VIP → HAProxy → gateway → an instance (found in Consul) → PostgreSQL
 * (found by Consul DNS) that reads its greeting from Consul KV and counts visits in the database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { teardownLab, withLab, type LabInfo } from './helpers/lab.js';
import { cliIn } from './helpers/cli.js';

const LAB = 'demo';
const ROOT = resolve(import.meta.dirname, '../..');
const CONSUL = join(ROOT, '.rtctl/artifacts/consul-1.8.7');
let lab: LabInfo;
let work: string;

const rtctl = cliIn(() => work, 900_000);

const prefix = () => lab.gateway.replace(/\.1$/, '.');

beforeAll(async () => {
  if (!existsSync(CONSUL)) await execa(join(ROOT, 'scripts/fetch-consul'));
  lab = await withLab(LAB, 7);
  work = mkdtempSync(join(tmpdir(), 'rtctl-e2e-demo-'));
  cpSync(join(ROOT, 'examples'), join(work, 'examples'), { recursive: true });
  mkdirSync(join(work, '.rtctl/secrets'), { recursive: true });
  writeFileSync(join(work, '.rtctl/secrets/app.password'), `app-${Math.random().toString(36).slice(2)}`, { mode: 0o600 });
  const s = readFileSync(join(ROOT, 'platform.yaml'), 'utf8')
    .replaceAll('/var/lib/rtctl/lab/default/', `${lab.dir}/`)
    .replaceAll('198.18.1.', prefix())
    .replace('path: .rtctl/artifacts/consul-1.8.7', `path: ${CONSUL}`);
  writeFileSync(join(work, 'platform.yaml'), s);
}, 180_000);

afterAll(async () => {
  await teardownLab(LAB);
  if (work) rmSync(work, { recursive: true, force: true });
});

async function viaVip(): Promise<{ status: number; body: Record<string, unknown> }> {
  try {
    const res = await fetch(`http://${prefix()}100/`, { signal: AbortSignal.timeout(5_000) });
    const text = await res.text();
    return { status: res.status, body: res.ok ? (JSON.parse(text) as Record<string, unknown>) : { text } };
  } catch (e) {
    return { status: 0, body: { error: String(e) } };
  }
}

describe('the main example platform.yaml on a 7-host lab', () => {
  it('validates, plans to a file and applies that plan to bare hosts; the next plan has no changes', async () => {
    const v = await rtctl(['validate']);
    expect(v.code, v.all).toBe(0);
    expect(v.out).toContain('platform.yaml: valid (7 hosts');
    const plan = await rtctl(['plan', '--out', 'demo.plan']);
    expect(plan.code, plan.all).toBe(0);
    const apply = await rtctl(['apply', 'demo.plan']);
    expect(apply.code, apply.all).toBe(0);
    const again = await rtctl(['plan', '--detailed-exitcode']);
    expect(again.code, again.all).toBe(0);
    expect(again.out).toContain('No changes. 7 hosts are in sync.');
  }, 900_000);

  it('answers through the VIP, the gateway and an instance that reads Consul KV and writes to the primary by name', async () => {
    await expect.poll(async () => (await viaVip()).body.greeting, { timeout: 60_000, interval: 1_000 }).toBe('hello from Consul KV');
    const a = await viaVip();
    const b = await viaVip();
    expect(a.status).toBe(200);
    expect(['h3', 'h4']).toContain(a.body.host);
    expect(typeof a.body.visits).toBe('number');
    // Each request counts a visit in PostgreSQL (per instance host), so the sum grows by one per request.
    expect(b.status).toBe(200);
    if (b.body.host === a.body.host) expect(b.body.visits).toBe((a.body.visits as number) + 1);
  }, 120_000);
});
