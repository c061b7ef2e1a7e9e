/**
 * The applier with real /bin/sh (LocalExecutor) standing in for hosts: stages across hosts, serial changes,
 * health gates, stop-after-failure, and exec resources. Each "host" appends to a shared log file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyPlan, gateStep, type Reporter } from '../../../src/apply/apply.js';
import { LocalExecutor } from '../../../src/executors/local.js';
import { buildProbe, parseProbe } from '../../../src/facts/probe.js';
import type { ExecResource } from '../../../src/model/resources.js';
import type { Plan } from '../../../src/plan/plan.js';
import { computePlan } from '../../../src/plan/plan.js';
import { Redactor } from '../../../src/secrets.js';
import { facts, noSecrets, plainCtx } from '../helpers.js';

let dir: string;
let log: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'rtctl-apply-'));
  log = join(dir, 'log');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** An exec resource that appends `host:name` to the log (slowly, so overlaps would show). */
const step = (host: string, name: string, extra: Partial<ExecResource> = {}): ExecResource => ({
  type: 'exec', id: `exec:${name}`, name, probe: 'echo no', want: 'yes', description: name,
  run: `echo "start ${host}:${name}" >> ${log}; sleep 0.2; echo "end ${host}:${name}" >> ${log}`, ...extra,
});

const silent: Reporter = { step() {}, changeDone() {}, failed() {}, hostDone() {} };

async function run(desired: Record<string, ExecResource[]>, parallel = 4) {
  writeFileSync(log, '');
  const hosts = Object.keys(desired).map((name) => ({ name, address: name, labels: [] }));
  const f = new Map(hosts.map((h) => [h.name, facts(h.name, Object.fromEntries(desired[h.name]!.map((r) => [r.id, { state: 'no' }])))]));
  const plan: Plan = computePlan({ hosts, desired: new Map(Object.entries(desired)), facts: f, ctx: plainCtx });
  // Each "host" keeps its rtctl state (manifest, lock, audit log) in its own temp dir, not this machine's.
  const executors = new Map(hosts.map((h) => [h.name, new LocalExecutor(h.name, { RTCTL_STATE_DIR: join(dir, h.name), RTCTL_AUDIT_LOG: join(dir, h.name, 'audit.log') })]));
  const result = await applyPlan(plan, {
    executors, facts: f, users: new Map(), parallel, secrets: noSecrets, redactor: new Redactor(), reporter: silent,
    interrupted: () => false, run: { id: 'test', by: 'test', plan: 'test' },
  });
  return { result, lines: readFileSync(log, 'utf8').trim().split('\n') };
}

describe('applyPlan', () => {
  it('finishes every stage on every host before the next stage starts', async () => {
    const { result, lines } = await run({
      a: [step('a', 'one', { stage: 0 }), step('a', 'two', { stage: 1 })],
      b: [step('b', 'one', { stage: 0 }), step('b', 'two', { stage: 1 })],
    });
    expect(result.ok).toBe(true);
    const lastStage0 = Math.max(lines.indexOf('end a:one'), lines.indexOf('end b:one'));
    const firstStage1 = Math.min(lines.indexOf('start a:two'), lines.indexOf('start b:two'));
    expect(lastStage0).toBeLessThan(firstStage1);
    // Stage 0 ran in parallel on both hosts.
    expect(lines.indexOf('start b:one')).toBeLessThan(lines.indexOf('end a:one'));
  });

  it('runs serial changes one host at a time', async () => {
    const { lines } = await run({ a: [step('a', 'r', { serial: true })], b: [step('b', 'r', { serial: true })], c: [step('c', 'r', { serial: true })] });
    expect(lines).toEqual(['start a:r', 'end a:r', 'start b:r', 'end b:r', 'start c:r', 'end c:r']);
  });

  it('stops starting changes after a failure, reporting what was and was not done', async () => {
    const { result, lines } = await run({
      a: [step('a', 'ok'), step('a', 'bad', { run: `echo "oops from a" >&2; exit 4` }), step('a', 'after')],
      b: [step('b', 'later', { stage: 1 })],
    });
    expect(result.ok).toBe(false);
    const a = result.outcomes.find((o) => o.host === 'a')!;
    expect(a.failure).toMatchObject({ step: 'bad', message: 'exit 4: oops from a' });
    expect(a.done.map((c) => c.id)).toEqual(['exec:ok']);
    expect(a.notDone.map((c) => c.id)).toEqual(['exec:bad', 'exec:after']);
    expect(result.outcomes.find((o) => o.host === 'b')!.notDone.map((c) => c.id)).toEqual(['exec:later']);
    expect(lines).toEqual(['start a:ok', 'end a:ok']);
  });

  it('gates a change on a health check, and fails it with the check output when it never passes', async () => {
    const flag = join(dir, 'healthy');
    const { result } = await run({ a: [step('a', 'up', { run: `(sleep 0.5; touch ${flag}) &`, gate: { script: `test -f ${flag}`, timeoutSec: 5, intervalSec: 0.2 as never, what: 'flag file' } })] });
    expect(result.ok).toBe(true);
    const { result: bad } = await run({ a: [step('a', 'never', { gate: { script: 'echo still starting; exit 1', timeoutSec: 1, what: 'the impossible' } })] });
    expect(bad.outcomes[0]!.failure?.message).toBe('exit 1: not healthy after 1 s: the impossible\nstill starting');
  });

  it('an exec resource is in sync when its probe prints the wanted state', async () => {
    const marker = join(dir, 'marker');
    const r = step('x', 'mark', { probe: `cat ${marker} 2>/dev/null || echo none`, want: 'done', run: `echo done > ${marker}` });
    const ex = new LocalExecutor();
    const before = parseProbe('x', (await ex.runScript(buildProbe([r]))).stdout);
    expect(before.resources.get(r.id)).toEqual({ state: 'none' });
    await ex.run(['sh', '-c', r.run]);
    const after = parseProbe('x', (await ex.runScript(buildProbe([r]))).stdout);
    expect(after.resources.get(r.id)).toEqual({ state: 'done' });
    expect(gateStep({ script: 'true', timeoutSec: 3, what: 'x' }).desc).toBe('wait for x (up to 3 s)');
  });
});
