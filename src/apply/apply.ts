/**
 * The applier: runs a plan's changes through executors. Hosts run in parallel (bounded); each host's changes
 * run in order. After the first failure (or an interrupt) no new change starts anywhere; changes in flight
 * finish, and the result says what was and wasn't done. Every host's manifest and audit log are updated.
 */
import { ApplyError, RtctlError } from '../errors.js';
import type { Executor } from '../executors/types.js';
import type { HostFacts, ManifestEntry } from '../facts/probe.js';
import { parseId } from '../model/resources.js';
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
  const outcomes = await mapLimit(work, ctx.parallel, async (hp): Promise<HostOutcome> => {
    const ex = ctx.executors.get(hp.host)!;
    const facts = ctx.facts.get(hp.host)!;
    const outcome: HostOutcome = { host: hp.host, done: [], notDone: [] };
    const owned = new Map<string, ManifestEntry>(facts.manifest.map((m) => [`${m.type}\t${m.key}`, m]));
    // Record what we are about to create before creating it, so an interrupted run can't orphan anything.
    for (const c of hp.changes) if (c.action !== 'delete') owned.set(`${c.type}\t${parseId(c.id).key}`, { type: c.type, key: parseId(c.id).key });
    // Restarts are owed from now on: if this run stops before doing them, the next one does them.
    const pending = new Set([...facts.pending, ...hp.changes.filter((c) => c.action === 'restart' || c.action === 'reload').map((c) => c.id)]);
    try {
      await runSh(ex, WRITE_MANIFEST, [], manifestText([...owned.values()]));
      await runSh(ex, WRITE_PENDING, [], [...pending].map((u) => `${u}\n`).join(''));
    } catch (err) {
      outcome.failure = { change: hp.changes[0]!, step: 'write manifest', message: message(err, ctx) };
      outcome.notDone = [...hp.changes];
      stop = true;
      ctx.reporter.hostDone(hp.host, outcome);
      return outcome;
    }
    for (const change of hp.changes) {
      if (shouldStop()) {
        outcome.notDone.push(change);
        continue;
      }
      const steps = handlerFor(change.type).steps(change as never);
      let failed = false;
      for (const step of steps) {
        ctx.reporter.step(hp.host, change, step);
        try {
          await runStep(ex, step, ctx.users.get(hp.host) ?? 'root', ctx);
        } catch (err) {
          const msg = message(err, ctx);
          outcome.failure = { change, step: step.desc, message: msg };
          ctx.reporter.failed(hp.host, change, step, msg);
          failed = true;
          stop = true;
          break;
        }
      }
      if (failed) {
        outcome.notDone.push(change);
        continue;
      }
      outcome.done.push(change);
      if (change.action === 'delete') owned.delete(`${change.type}\t${parseId(change.id).key}`);
      if (change.action === 'restart' || change.action === 'reload') pending.delete(change.id);
      ctx.reporter.changeDone(hp.host, change);
    }
    await finishHost(ex, owned, pending, outcome, ctx, shouldStop() && !outcome.failure);
    ctx.reporter.hostDone(hp.host, outcome);
    return outcome;
  });
  const ok = outcomes.every((o) => !o.failure && o.notDone.length === 0);
  return { outcomes, ok, interrupted: ctx.interrupted() };
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
    await runSh(ex, WRITE_PENDING, [], [...pending].map((u) => `${u}\n`).join(''));
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
