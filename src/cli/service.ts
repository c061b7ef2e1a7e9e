/**
 * `rtctl rollback SERVICE` and `rtctl restart SERVICE`: the service's instances, batch by batch with the same
 * drain and health gates as a rollout, go back to their previous release (rollback) or restart on the release
 * they run (restart). Both are an ordinary plan + apply of the service's rollout resources only, with the mode
 * set for this run (recipes/services.ts `rolloutOverrides`); nothing else on the hosts changes.
 */
import { randomUUID } from 'node:crypto';
import { loadPlatform } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { computePlan, hasChanges } from '../plan/plan.js';
import { renderPlan } from '../plan/render.js';
import { processSecretSource } from '../secrets.js';
import { desiredResources } from '../../recipes/index.js';
import { instanceExecName, instancesOf, rolloutOverrides } from '../../recipes/services.js';
import { ensureGenerated } from '../apply/generated.js';
import { confirm, execute, finish, trapSignals } from './apply.js';
import { savedPlan } from './plan.js';
import { diffContext, Session } from './session.js';

export interface ServiceCommandOptions {
  /** platform file (`-f, --file`, default platform.yaml) */
  file: string;
  /** hosts worked on at once (`--parallel`, default 20) */
  parallel: number;
  /** `--accept-new-host-keys` */
  acceptNewHostKeys: boolean;
  /** `--auto-approve`: don't ask for confirmation */
  autoApprove?: boolean;
  /** `--json`: result as JSON (like apply) */
  json?: boolean;
}

export async function rollbackCommand(service: string, opts: ServiceCommandOptions): Promise<void> {
  await rolling(service, 'rollback', opts);
}

export async function restartCommand(service: string, opts: ServiceCommandOptions): Promise<void> {
  await rolling(service, 'restart', opts);
}

async function rolling(service: string, mode: 'rollback' | 'restart', opts: ServiceCommandOptions): Promise<void> {
  const platform = loadPlatform(opts.file);
  const svc = (platform.doc.services ?? []).find((s) => s.name === service);
  if (!svc) {
    const names = (platform.doc.services ?? []).map((s) => s.name);
    throw new ConfigError(`unknown service "${service}" in ${platform.file}${names.length ? ` (services: ${names.join(', ')})` : ' (it has no services section)'}`);
  }
  await ensureGenerated(platform);
  rolloutOverrides.set(platform, new Map([[service, { mode, token: randomUUID().slice(0, 8) }]]));
  const desired = desiredResources(platform);
  const instances = instancesOf(platform, svc);
  const secrets = processSecretSource(platform.dir);
  const session = new Session(platform.hosts.filter((h) => instances.some((i) => i.host.name === h.name)), { parallel: opts.parallel, acceptNewHostKeys: opts.acceptNewHostKeys, secrets });
  const untrap = trapSignals();
  try {
    await session.open();
    const facts = await session.gather(desired, true);
    // Only this service's instances: every other resource stays as it is, whatever platform.yaml says.
    const target = [...new Set(instances.map((i) => `exec:${instanceExecName(svc, i.port)}`))];
    const plan = computePlan({ hosts: session.hosts.map((c) => platform.hosts.find((h) => h.name === c.name)!), desired, facts, ctx: diffContext(secrets, session.redactor), filter: { target, exclude: [] } });
    if (!opts.json) process.stdout.write(`${session.redactor.redact(renderPlan(plan))}\n`);
    if (!hasChanges(plan)) return;
    if (!opts.autoApprove) await confirm();
    const saved = savedPlan(platform, plan);
    const flags = { file: opts.file, target, exclude: [], parallel: opts.parallel, acceptNewHostKeys: opts.acceptNewHostKeys, ...(opts.json ? { json: true } : {}) };
    const result = await execute(plan, session, platform.dir, saved.id, flags);
    finish(result, plan, flags);
    if (mode === 'rollback' && !opts.json) {
      process.stdout.write(`\nNote: platform.yaml still says ${svc.name} ${platform.artifacts[svc.artifact]?.version ?? ''}; the next \`rtctl apply\` rolls forward to it again unless you change it.\n`);
    }
  } finally {
    untrap();
    await session.close();
  }
}
