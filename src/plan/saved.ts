/**
 * Saved plans (`rtctl plan --out F`, `rtctl apply F`) and the `--json` output share one versioned format,
 * documented in docs/plan-format.md. A saved plan holds secret *references*, never their values.
 */
import type { Host } from '../model/platform.js';
import type { Plan } from './plan.js';
import { summarize, type Summary } from './plan.js';
import { ConfigError } from '../errors.js';

export const PLAN_FORMAT = '1';

export interface SavedPlan {
  format_version: typeof PLAN_FORMAT;
  rtctl_version: string;
  created_at: string;
  /** Random id, recorded in every host's audit log. */
  id: string;
  platform: { file: string; sha256: string };
  summary: Summary;
  /** How to reach the hosts (no secrets here: keys are file paths). */
  connections: Host[];
  /** Consul servers, through which `apply` takes the cluster-wide lock. */
  consul_servers?: string[];
  hosts: Plan['hosts'];
}

export function toSaved(plan: Plan, meta: { version: string; id: string; file: string; sha256: string; hosts: Host[]; now: Date; consulServers?: string[] }): SavedPlan {
  return {
    format_version: PLAN_FORMAT,
    rtctl_version: meta.version,
    created_at: meta.now.toISOString(),
    id: meta.id,
    platform: { file: meta.file, sha256: meta.sha256 },
    summary: summarize(plan),
    connections: meta.hosts,
    ...(meta.consulServers?.length ? { consul_servers: meta.consulServers } : {}),
    hosts: plan.hosts,
  };
}

export function parseSaved(text: string, file: string): SavedPlan {
  let v: Partial<SavedPlan>;
  try {
    v = JSON.parse(text) as Partial<SavedPlan>;
  } catch {
    throw new ConfigError(`${file}: not a saved plan (not JSON)`);
  }
  if (v.format_version !== PLAN_FORMAT || !Array.isArray(v.hosts) || !Array.isArray(v.connections)) {
    throw new ConfigError(`${file}: not a saved plan of format ${PLAN_FORMAT}`);
  }
  return v as SavedPlan;
}
