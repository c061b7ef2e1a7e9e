import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadPlatform } from '../config/load.js';
import { ExitError } from '../errors.js';
import type { Platform } from '../model/platform.js';
import { computePlan, hasChanges, type Filter, type Plan } from '../plan/plan.js';
import { renderPlan } from '../plan/render.js';
import { toSaved } from '../plan/saved.js';
import { processSecretSource } from '../secrets.js';
import { desiredResources } from '../../recipes/index.js';
import { ensureGenerated } from '../apply/generated.js';
import { servers as consulServers } from '../../recipes/consul.js';
import { diffContext, Session } from './session.js';
import { VERSION } from './main.js';

export interface PlanFlags {
  file: string;
  target: string[];
  exclude: string[];
  parallel: number;
  acceptNewHostKeys: boolean;
  out?: string;
  json?: boolean;
  detailedExitcode?: boolean;
}

/** Load → gather → plan. With `lock`, the hosts stay locked until `session.close()`. */
export async function makePlan(flags: PlanFlags, lock: boolean): Promise<{ platform: Platform; plan: Plan; session: Session }> {
  const platform = loadPlatform(flags.file);
  await ensureGenerated(platform);
  const desired = desiredResources(platform);
  const secrets = processSecretSource(platform.dir);
  const session = new Session(platform.hosts, { parallel: flags.parallel, acceptNewHostKeys: flags.acceptNewHostKeys, secrets });
  try {
    await session.open();
    if (lock) await session.lockCluster(consulServerNames(platform));
    const facts = await session.gather(desired, lock);
    const filter: Filter = { target: flags.target, exclude: flags.exclude };
    const plan = computePlan({ hosts: platform.hosts, desired, facts, ctx: diffContext(secrets, session.redactor), filter });
    return { platform, plan, session };
  } catch (err) {
    await session.close();
    throw err;
  }
}

export function consulServerNames(p: Platform): string[] {
  return consulServers(p).map((h) => h.name);
}

export function savedPlan(platform: Platform, plan: Plan, id = randomUUID().slice(0, 8)) {
  const sha256 = createHash('sha256').update(readFileSync(platform.file)).digest('hex');
  return toSaved(plan, { version: VERSION, id, file: platform.file, sha256, hosts: platform.hosts, now: new Date(), consulServers: consulServerNames(platform) });
}

export async function planCommand(flags: PlanFlags): Promise<void> {
  const { platform, plan, session } = await makePlan(flags, false);
  await session.close();
  const saved = savedPlan(platform, plan);
  if (flags.out) {
    writeFileSync(resolve(flags.out), `${JSON.stringify(saved, null, 2)}\n`, { mode: 0o600 });
  }
  if (flags.json) process.stdout.write(`${JSON.stringify(saved, null, 2)}\n`);
  else {
    process.stdout.write(`${session.redactor.redact(renderPlan(plan))}\n`);
    if (flags.out) process.stdout.write(`Saved the plan to ${flags.out}; apply exactly it with: rtctl apply ${flags.out}\n`);
  }
  if (flags.detailedExitcode && hasChanges(plan)) throw new ExitError(2);
}
