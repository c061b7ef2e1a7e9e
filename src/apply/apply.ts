/**
 * The applier: runs a plan's changes through executors. Hosts run in parallel (bounded); each host's changes
 * run in order. After the first failure (or an interrupt) no new change starts anywhere; changes in flight
 * finish, and the result says what was and wasn't done. Every host's manifest and audit log are updated.
 */
import { ApplyError, RtctlError } from '../errors.js';
import type { Executor } from '../executors/types.js';
import type { HostFacts, ManifestEntry } from '../facts/probe.js';
import { OWNED_TYPES, parseId, type Gate } from '../model/resources.js';
import type { Plan } from '../plan/plan.js';
import { handlerFor } from '../resources/index.js';
import { stagingPath } from '../resources/release.js';
import type { Change, Step } from '../resources/types.js';
import { resolveRefs, type Redactor, type SecretSource } from '../secrets.js';
import { mapLimit } from '../util/async.js';
import { ensureArtifact } from './artifacts.js';
import { APPEND_AUDIT, manifestText, WRITE_MANIFEST, WRITE_PENDING, type AuditRecord } from './host-state.js';

export interface Reporter {
  step(host: string, change: Change, step: Step): void;
  changeDone(host: string, change: Change): void;
  failed(host: string, change: Change, step: Step, message: string): void;
  hostDone(host: string, outcome: HostOutcome): void;
}

export interface HostOutcome {
  host: string;
  done: Change[];
  notDone: Change[];
  failure?: { change: Change; step: string; message: string };
}

export interface ApplyResult {
  outcomes: HostOutcome[];
  ok: boolean;
  interrupted: boolean;
}

export interface ApplyContext {
  executors: Map<string, Executor>;
  facts: Map<string, HostFacts>;
  /** Login user per host (for staging paths of uploads). */
  users: Map<string, string>;
  parallel: number;
  secrets: SecretSource;
  redactor: Redactor;
  reporter: Reporter;
  /** Set to stop starting new changes (Ctrl-C). */
  interrupted: () => boolean;
  run: { id: string; by: string; plan: string };
}

export async function applyPlan(plan: Plan, ctx: ApplyContext): Promise<ApplyResult> {
  let stop = false;
  const shouldStop = () => stop || ctx.interrupted();
  const work = plan.hosts.filter((h) => h.changes.length > 0);
  const states = new Map<string, HostRun>();

  // 1. Before any change: record what will be created and which restarts are owed, on every host.
  await mapLimit(work, ctx.parallel, async (hp) => {
    const st = startHost(hp.host, hp.changes, ctx);
    states.set(hp.host, st);
    try {
      await runSh(st.ex, WRITE_MANIFEST, [], manifestText([...st.owned.values()]));
      await runSh(st.ex, WRITE_PENDING, [], pendingText(st.pending));
    } catch (err) {
      st.outcome.failure = { change: hp.changes[0]!, step: 'write manifest', message: message(err, ctx) };
      stop = true;
    }
  });

  // 2. Stage by stage across hosts; within a stage hosts run in parallel, or one at a time for serial changes.
  const stages = [...new Set(work.flatMap((h) => h.changes.map(stageOf)))].sort((a, b) => a - b);
  for (const stage of stages) {
    const hosts = work.filter((h) => h.changes.some((c) => stageOf(c) === stage));
    const serial = hosts.some((h) => h.changes.some((c) => stageOf(c) === stage && isSerial(c)));
    await mapLimit(hosts, serial ? 1 : ctx.parallel, async (hp) => {
      const st = states.get(hp.host)!;
      for (const change of hp.changes.filter((c) => stageOf(c) === stage)) {
        if (shouldStop() || st.outcome.failure) break;
        if (await runChange(st, change, ctx)) st.outcome.done.push(change);
        else stop = true;
      }
    });
  }

  // 3. Every host: final manifest, owed restarts and an audit record; what wasn't done is listed.
  const outcomes = await mapLimit(work, ctx.parallel, async (hp) => {
    const st = states.get(hp.host)!;
    const done = new Set(st.outcome.done);
    st.outcome.notDone = hp.changes.filter((c) => !done.has(c));
    await finishHost(st.ex, st.owned, st.pending, st.outcome, ctx, shouldStop() && !st.outcome.failure);
    ctx.reporter.hostDone(hp.host, st.outcome);
    return st.outcome;
  });
  const ok = outcomes.every((o) => !o.failure && o.notDone.length === 0);
  return { outcomes, ok, interrupted: ctx.interrupted() };
}

interface HostRun {
  ex: Executor;
  owned: Map<string, ManifestEntry>;
  pending: Set<string>;
  outcome: HostOutcome;
}

const stageOf = (c: Change) => c.resource.stage ?? 0;
const isRestart = (c: Change) => c.action === 'restart' || c.action === 'reload';
const isSerial = (c: Change) => c.resource.serial === true || (c.resource.serial === 'restarts' && isRestart(c));
const ownedKey = (c: Change) => `${c.type}\t${parseId(c.id).key}`;
const pendingText = (p: Set<string>) => [...p].map((u) => `${u}\n`).join('');

function startHost(host: string, changes: Change[], ctx: ApplyContext): HostRun {
  const facts = ctx.facts.get(host)!;
  const owned = new Map<string, ManifestEntry>(facts.manifest.map((m) => [`${m.type}\t${m.key}`, m]));
  // Record what we are about to create before creating it, so an interrupted run can't orphan anything.
  for (const c of changes) if (c.action !== 'delete' && OWNED_TYPES.includes(c.type)) owned.set(ownedKey(c), { type: c.type, key: parseId(c.id).key });
  // Restarts are owed from now on: if this run stops before doing them, the next one does them.
  const pending = new Set([...facts.pending, ...changes.filter((c) => c.action === 'restart' || c.action === 'reload').map((c) => c.id)]);
  return { ex: ctx.executors.get(host)!, owned, pending, outcome: { host, done: [], notDone: [] } };
}

/** Runs one change's steps and its gate; false (with the failure recorded) when a step fails. */
async function runChange(st: HostRun, change: Change, ctx: ApplyContext): Promise<boolean> {
  const host = st.outcome.host;
  const steps: Step[] = handlerFor(change.type).steps(change as never);
  const gate = change.resource.gate;
  // A gate belongs after the last change that affects the resource: its restart if one is planned.
  const gated = gate && !(change.action !== 'restart' && change.action !== 'reload' && st.pending.has(change.id) && change.type === 'unit');
  if (gated && change.action !== 'delete') steps.push(gateStep(gate));
  for (const step of steps) {
    ctx.reporter.step(host, change, step);
    try {
      await runStep(st.ex, step, ctx.users.get(host) ?? 'root', ctx);
    } catch (err) {
      const msg = message(err, ctx);
      st.outcome.failure = { change, step: step.desc, message: msg };
      ctx.reporter.failed(host, change, step, msg);
      // A unit whose start or health gate failed may now look in sync; owe it a restart so the next apply
      // starts it again and re-checks its gate.
      if (change.type === 'unit' && change.action !== 'delete') st.pending.add(change.id);
      return false;
    }
  }
  if (change.action === 'delete') st.owned.delete(ownedKey(change));
  if (change.action === 'restart' || change.action === 'reload') st.pending.delete(change.id);
  ctx.reporter.changeDone(host, change);
  return true;
}

/** Polls the gate script until it passes; on time-out, fails with its last output. */
export function gateStep(gate: Gate): Step {
  const interval = gate.intervalSec ?? 1;
  return {
    kind: 'sh',
    desc: `wait for ${gate.what} (up to ${gate.timeoutSec} s)`,
    script: `end=$(( $(date +%s) + $1 )); while :; do
  if out=$(sh -c "$3" 2>&1); then exit 0; fi
  [ "$(date +%s)" -ge "$end" ] && break; sleep "$2"; done
printf 'not healthy after %s s: %s\n%s\n' "$1" "$4" "$(printf '%s' "$out" | tail -n 10)" >&2; exit 1`,
    args: [String(gate.timeoutSec), String(interval), gate.script, gate.what],
  };
}

/** Final manifest and audit record; best effort (a failure here must not hide the apply's own result). */
async function finishHost(ex: Executor, owned: Map<string, ManifestEntry>, pending: Set<string>, o: HostOutcome, ctx: ApplyContext, interrupted: boolean) {
  const record: AuditRecord = {
    time: new Date().toISOString(),
    by: ctx.run.by,
    run: ctx.run.id,
    plan: ctx.run.plan,
    result: o.failure ? 'failed' : interrupted || o.notDone.length ? 'interrupted' : 'ok',
    changes: o.done.length + o.notDone.length,
    done: o.done.length,
    ...(o.failure ? { failed: `${o.failure.change.id}: ${o.failure.step}` } : {}),
  };
  try {
    await runSh(ex, WRITE_MANIFEST, [], manifestText([...owned.values()]));
    await runSh(ex, WRITE_PENDING, [], pendingText(pending));
    await runSh(ex, APPEND_AUDIT, [], `${JSON.stringify(record)}\n`);
  } catch {
    /* reported by the next run's probe */
  }
}

async function runStep(ex: Executor, step: Step, user: string, ctx: ApplyContext): Promise<void> {
  if (step.kind === 'upload-artifact') {
    const local = await ensureArtifact(step.source, step.sha256);
    const remote = stagingPath(user, step.sha256);
    const mk = await ex.run(['mkdir', '-p', '-m', '700', remote.slice(0, remote.lastIndexOf('/'))], { become: false });
    if (mk.code !== 0) throw new ApplyError(`cannot create staging directory: ${mk.stderr.trim()}`);
    await ex.putFile(local, remote, 0o600);
    return;
  }
  const args = step.args.map((a) => (a === '@STAGED@' ? stagingPath(user, stagedSha(step)) : a));
  const stdin = step.stdin === undefined ? undefined : resolveRefs(step.stdin, ctx.secrets, ctx.redactor);
  await runSh(ex, step.script, args, stdin);
}

/** The install step of a release carries the artifact's sha256 as its third argument. */
function stagedSha(step: Extract<Step, { kind: 'sh' }>): string {
  return step.args[2] ?? '';
}

async function runSh(ex: Executor, script: string, args: string[], stdin?: string): Promise<void> {
  const res = await ex.run(['sh', '-c', script, 'rtctl', ...args], stdin === undefined ? {} : { stdin });
  if (res.code !== 0) {
    const err = res.stderr.trim().split('\n').slice(-15).join('\n') || res.stdout.trim().split('\n').slice(-5).join('\n');
    throw new ApplyError(`exit ${res.code ?? 'signal'}${err ? `: ${err}` : ''}`);
  }
}

function message(err: unknown, ctx: ApplyContext): string {
  const m = err instanceof RtctlError || err instanceof Error ? err.message : String(err);
  return ctx.redactor.redact(m);
}
