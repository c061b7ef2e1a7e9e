/**
 * The planner: pure and synchronous. Desired resources per host + facts per host → changes per host, ordered,
 * with restarts (handler semantics) and deletions of what the manifest says rtctl owns but the platform no
 * longer declares.
 */
import type { Resource } from '../model/resources.js';
import { makeId, TYPE_ORDER } from '../model/resources.js';
import type { HostFacts } from '../facts/probe.js';
import { factsHash } from '../facts/probe.js';
import { HANDLERS } from '../resources/index.js';
import type { Change, DiffContext } from '../resources/types.js';

export interface HostPlan {
  host: string;
  address: string;
  changes: Change[];
  /** Hash of the facts this host's changes depend on, recorded in saved plans. */
  factsHash: string;
  /** Resources checked and found in sync. */
  inSync: number;
}

export interface Plan {
  hosts: HostPlan[];
}

export interface Filter {
  /** Host names/labels or resource ids (`type:key`, `*` wildcard) to keep; empty = everything. */
  target: string[];
  exclude: string[];
}

export interface PlanInput {
  hosts: { name: string; address: string; labels: string[] }[];
  desired: Map<string, Resource[]>;
  facts: Map<string, HostFacts>;
  ctx: DiffContext;
  filter?: Filter;
}

const RANK = new Map(TYPE_ORDER.map((t, i) => [t, i]));

export function computePlan(input: PlanInput): Plan {
  const hosts: HostPlan[] = [];
  for (const h of input.hosts) {
    const facts = input.facts.get(h.name);
    if (!facts) continue;
    const keepHost = hostMatches(h, input.filter);
    const desired = (input.desired.get(h.name) ?? []).filter(() => keepHost);
    const changes: Change[] = [];
    let inSync = 0;
    const desiredIds = new Set(desired.map((r) => r.id));
    for (const r of desired) {
      if (!resourceMatches(r.id, input.filter)) continue;
      const d = HANDLERS[r.type].diff(r, facts.resources.get(r.id) ?? {}, input.ctx);
      if (d) changes.push({ host: h.name, id: r.id, type: r.type, resource: r, ...d });
      else inSync++;
    }
    if (keepHost) {
      for (const m of facts.manifest) {
        const id = makeId(m.type, m.key);
        if (desiredIds.has(id) || !HANDLERS[m.type] || !resourceMatches(id, input.filter)) continue;
        const fact = facts.resources.get(id) ?? {};
        const handler = HANDLERS[m.type];
        if (!handler.exists(fact)) continue;
        changes.push({ host: h.name, id, type: m.type, action: 'delete', resource: handler.fromManifest(m.key), details: ['no longer in the platform'] });
      }
    }
    changes.push(...restarts(h.name, desired, changes, facts));
    const ordered = order(changes);
    hosts.push({ host: h.name, address: h.address, changes: ordered, factsHash: factsHash(facts, ordered.map((c) => c.id)), inSync });
  }
  return { hosts };
}

/** One restart (or reload) per running unit whose file, or anything that notifies it, changes. */
function restarts(host: string, desired: Resource[], changes: Change[], facts: HostFacts): Change[] {
  const byId = new Map(changes.map((c) => [c.id, c]));
  const out: Change[] = [];
  for (const u of desired) {
    if (u.type !== 'unit' || !u.started) continue;
    const own = byId.get(u.id);
    const stage = u.stage ?? 0;
    // A new or stopped unit is started by its own step — after everything in its stage or earlier; only
    // notifiers in later stages still owe it a restart.
    const startedByOwnStep = own?.action === 'create' || facts.resources.get(u.id)?.active !== 'active';
    const counts = (c: Change) => !startedByOwnStep || (c.resource.stage ?? 0) > stage;
    const reasons: string[] = [];
    let restart = false;
    if (facts.pending.includes(u.id) && !startedByOwnStep) {
      reasons.push('owed by an earlier apply');
      restart = true;
    }
    if (!startedByOwnStep && own?.details.some((d) => d.startsWith('unit file changed'))) {
      reasons.push('unit file changed');
      restart = true;
    }
    for (const c of changes) {
      if (c.id === u.id || c.action === 'delete' || !counts(c)) continue;
      // `reload:unit:x` asks for a reload even when the unit restarts for other changes (e.g. a service
      // definition for Consul); a plain `unit:x` asks for a restart unless the unit says `reload: true`.
      if (c.resource.notify?.includes(u.id)) {
        reasons.push(`${c.id} changed`);
        if (!u.reload) restart = true;
      } else if (c.resource.notify?.includes(`reload:${u.id}`)) reasons.push(`${c.id} changed`);
    }
    if (reasons.length === 0) continue;
    const action = restart ? 'restart' : 'reload';
    // The restart runs after the last change that caused it, even one in a later stage.
    const last = Math.max(stage, ...changes.filter((c) => reasons.includes(`${c.id} changed`)).map((c) => c.resource.stage ?? 0));
    out.push({ host, id: u.id, type: 'unit', action, resource: last === stage ? u : { ...u, stage: last }, details: [], reason: reasons.join(', ') });
  }
  return out;
}

/** Deletions in reverse type order, then creations/updates in type order, then restarts. Stable within a rank. */
function order(changes: Change[]): Change[] {
  const phase = (c: Change) => (c.action === 'delete' ? 0 : c.action === 'restart' || c.action === 'reload' ? 2 : 1);
  const rank = (c: Change) => {
    const r = RANK.get(c.type) ?? 0;
    return c.action === 'delete' ? -r : r;
  };
  return changes
    .map((c, i) => ({ c, i }))
    .sort((a, b) => phase(a.c) - phase(b.c) || rank(a.c) - rank(b.c) || a.i - b.i)
    .map((x) => x.c);
}

function globMatch(pattern: string, s: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(s);
}

const isResourcePattern = (s: string) => s.includes(':');

function hostMatches(h: { name: string; labels: string[] }, f?: Filter): boolean {
  if (!f) return true;
  const hit = (s: string) => !isResourcePattern(s) && (globMatch(s, h.name) || h.labels.includes(s));
  const targets = f.target.filter((s) => !isResourcePattern(s));
  if (targets.length > 0 && !targets.some(hit)) return false;
  return !f.exclude.some(hit);
}

function resourceMatches(id: string, f?: Filter): boolean {
  if (!f) return true;
  const targets = f.target.filter(isResourcePattern);
  if (targets.length > 0 && !targets.some((t) => globMatch(t, id))) return false;
  return !f.exclude.filter(isResourcePattern).some((t) => globMatch(t, id));
}

export interface Summary {
  create: number;
  update: number;
  delete: number;
  restart: number;
  hostsChanged: number;
  hosts: number;
}

export function summarize(plan: Plan): Summary {
  const s: Summary = { create: 0, update: 0, delete: 0, restart: 0, hostsChanged: 0, hosts: plan.hosts.length };
  for (const h of plan.hosts) {
    if (h.changes.length) s.hostsChanged++;
    for (const c of h.changes) {
      if (c.action === 'reload') s.restart++;
      else s[c.action]++;
    }
  }
  return s;
}

export function hasChanges(plan: Plan): boolean {
  return plan.hosts.some((h) => h.changes.length > 0);
}
