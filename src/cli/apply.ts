import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { applyPlan, type ApplyResult } from '../apply/apply.js';
import { ApplyError, ConfigError, ExitError, StalePlanError } from '../errors.js';
import { factsHash } from '../facts/probe.js';
import type { Resource } from '../model/resources.js';
import { hasChanges, summarize, type Plan } from '../plan/plan.js';
import { renderPlan, summaryLine } from '../plan/render.js';
import { parseSaved } from '../plan/saved.js';
import { processSecretSource } from '../secrets.js';
import { makePlan, savedPlan, type PlanFlags } from './plan.js';
import { createReporter } from './reporter.js';
import { Session } from './session.js';

export interface ApplyFlags extends PlanFlags {
  autoApprove?: boolean;
}

/**
 * Ctrl-C (or SIGTERM) from the first moment of an apply: before any change it ends the run cleanly (locks
 * released, exit 130); during the changes it stops new ones from starting. A second one exits at once.
 */
let interrupted = false;
function onSignal(): void {
  if (interrupted) process.exit(130);
  interrupted = true;
  process.stderr.write('\nInterrupted: finishing the steps in progress, starting no new ones (Ctrl-C again to abort now).\n');
}
export function trapSignals(): () => void {
  interrupted = false;
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}
function stopIfInterrupted(): void {
  if (!interrupted) return;
  process.stderr.write('Interrupted before any change: nothing was changed.\n');
  throw new ExitError(130);
}

export async function applyCommand(planfile: string | undefined, flags: ApplyFlags): Promise<void> {
  const untrap = trapSignals();
  try {
    await (planfile ? applySaved(planfile, flags) : applyCurrent(flags));
  } finally {
    untrap();
  }
}

async function applyCurrent(flags: ApplyFlags): Promise<void> {
  const { platform, plan, session } = await makePlan(flags, true);
  try {
    stopIfInterrupted();
    const out = session.redactor.redact(renderPlan(plan));
    if (!flags.json) process.stdout.write(`${out}\n`);
    if (!hasChanges(plan)) return;
    if (!flags.autoApprove) await confirm();
    stopIfInterrupted();
    const saved = savedPlan(platform, plan);
    const result = await execute(plan, session, platform.dir, saved.id, flags);
    finish(result, plan, flags);
  } finally {
    await session.close();
  }
}

/** Applies exactly a saved plan, after checking that the facts its changes depend on are unchanged. */
async function applySaved(planfile: string, flags: ApplyFlags): Promise<void> {
  let text: string;
  try {
    text = readFileSync(planfile, 'utf8');
  } catch {
    throw new ConfigError(`${planfile}: cannot read saved plan`);
  }
  const saved = parseSaved(text, planfile);
  const plan: Plan = { hosts: saved.hosts };
  const changed = new Set(saved.hosts.filter((h) => h.changes.length > 0).map((h) => h.host));
  const hosts = saved.connections.filter((h) => changed.has(h.name) || saved.consul_servers?.includes(h.name));
  if (changed.size === 0) {
    process.stdout.write('The saved plan has no changes.\n');
    return;
  }
  const dir = saved.platform.file.slice(0, saved.platform.file.lastIndexOf('/')) || '.';
  const session = new Session(hosts, { parallel: flags.parallel, acceptNewHostKeys: flags.acceptNewHostKeys, secrets: processSecretSource(dir) });
  try {
    await session.open();
    await session.lockCluster(saved.consul_servers ?? []);
    const probe = new Map<string, Resource[]>(saved.hosts.map((h) => [h.host, h.changes.map((c) => c.resource)]));
    const facts = await session.gather(probe, true);
    const stale = saved.hosts.filter((h) => h.changes.length > 0 && factsHash(facts.get(h.host)!, h.changes.map((c) => c.id)) !== h.factsHash);
    if (stale.length > 0) {
      throw new StalePlanError(`saved plan is stale: ${stale.map((h) => h.host).join(', ')} changed since the plan was made (${saved.created_at}); run \`rtctl plan\` again`);
    }
    const result = await execute(plan, session, dir, saved.id, flags, facts);
    finish(result, plan, flags);
  } finally {
    await session.close();
  }
}

export async function confirm(): Promise<void> {
  if (!process.stdin.isTTY) throw new ConfigError('refusing to apply without confirmation: no terminal to ask in; pass --auto-approve');
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  const answer = await rl.question('\nApply these changes? Only "yes" is accepted: ');
  rl.close();
  if (answer.trim() !== 'yes') throw new ApplyError('apply cancelled; nothing was changed');
}

export async function execute(plan: Plan, session: Session, dir: string, planId: string, flags: ApplyFlags, facts?: Awaited<ReturnType<Session['gather']>>): Promise<ApplyResult> {
  const reporter = createReporter(plan, session.redactor, !!flags.json);
  try {
    return await applyPlan(plan, {
      executors: session.executors,
      facts: facts ?? session.lastFacts!,
      users: new Map(session.hosts.map((h) => [h.name, h.user])),
      parallel: flags.parallel,
      secrets: processSecretSource(dir),
      redactor: session.redactor,
      reporter,
      interrupted: () => interrupted,
      run: { id: session.run.run, by: session.run.by, plan: planId },
    });
  } finally {
    await reporter.close();
  }
}

export function finish(result: ApplyResult, plan: Plan, flags: ApplyFlags): void {
  const done = result.outcomes.reduce((a, o) => a + o.done.length, 0);
  const notDone = result.outcomes.flatMap((o) => o.notDone.map((c) => `${o.host} ${c.id}`));
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ format_version: '1', ok: result.ok, interrupted: result.interrupted, summary: summarize(plan), outcomes: result.outcomes.map((o) => ({ host: o.host, done: o.done.map((c) => ({ id: c.id, action: c.action })), not_done: o.notDone.map((c) => ({ id: c.id, action: c.action })), ...(o.failure ? { failure: { id: o.failure.change.id, step: o.failure.step, message: o.failure.message } } : {}) })) }, null, 2)}\n`);
  }
  if (result.ok) {
    if (!flags.json) process.stdout.write(`\nApply complete. ${summaryLine(summarize(plan)).replace(/^Plan: /, '')}\n`);
    return;
  }
  const lines = [`${result.interrupted ? 'Apply interrupted' : 'Apply failed'}: ${done} change(s) done, ${notDone.length} not done.`];
  for (const o of result.outcomes) if (o.failure) lines.push(`${o.host}: ${o.failure.change.id}: ${o.failure.step}: ${o.failure.message}`);
  if (notDone.length) lines.push(`Not done: ${notDone.join(', ')}`, 'Run `rtctl apply` again to complete it.');
  if (flags.json) {
    process.stderr.write(`${lines[0]}\n`);
    throw new ExitError(result.interrupted ? 130 : 1);
  }
  const err = new ApplyError(lines.join('\n'));
  if (result.interrupted) err.exitCode = 130;
  throw err;
}
