/**
 * Desired-state resources: what recipes produce for each host, and what the planner diffs against facts.
 * Pure data. Each resource type lives in src/resources/<type>.ts with its probe, diff and apply steps.
 */

/** Where in platform.yaml a resource came from, for messages. */
export interface Origin {
  /** Document path, e.g. `files/2`. */
  path: string;
}

/** A health gate: after the change (and its unit's restart) on a host, poll until it passes or time out. */
export interface Gate {
  /** sh script; exit 0 = healthy. Its last output lines are shown when the gate fails. */
  script: string;
  timeoutSec: number;
  intervalSec?: number;
  /** What is being waited for, e.g. `consul leader elected`. */
  what: string;
}

interface Base {
  /** Unique per host: `<type>:<key>`, e.g. `file:/etc/motd`. */
  id: string;
  /** Unit ids (on the same host) restarted (once per run) when this resource changes. */
  notify?: string[];
  /**
   * Cross-host ordering: every change of stage N on every host finishes before any change of stage N+1
   * starts (e.g. Consul servers before clients, a PostgreSQL primary before its replicas). Default 0.
   */
  stage?: number;
  /**
   * Within its stage, do this resource on one host at a time; `'restarts'`: only its restarts/reloads (e.g.
   * Consul servers start together on first bootstrap, but later restart one by one).
   */
  serial?: boolean | 'restarts';
  /** Wait for this after the resource changed on a host (and after its restart). */
  gate?: Gate;
  origin?: Origin;
}

export interface PackageResource extends Base { type: 'package'; name: string; version?: string; }
export interface GroupResource extends Base { type: 'group'; name: string; system: boolean; }
export interface UserResource extends Base {
  type: 'user'; name: string; system: boolean; home: string; shell: string; groups: string[];
}
export interface DirectoryResource extends Base {
  type: 'directory'; path: string; owner: string; group: string; mode: string;
}
export interface FileResource extends Base {
  type: 'file';
  path: string;
  /** Content, possibly holding `${env:…}`/`${file:…}` secret references (resolved only when needed). */
  content: string;
  owner: string; group: string; mode: string;
  /** Command checking the staged file before it replaces the old one; `{}` is the staged path. */
  check?: string;
  /** True when content holds secret references: never shown, written 0600 unless a stricter mode is set. */
  sensitive: boolean;
}
export interface UnitResource extends Base {
  type: 'unit';
  name: string;
  content: string;
  enabled: boolean;
  started: boolean;
  /** On dependency change, `systemctl reload` instead of restart. */
  reload: boolean;
  sensitive: boolean;
}
export interface ArtifactRef {
  name: string; version: string; sha256: string; format: 'binary' | 'tar.gz'; filename: string;
  /** Where the file comes from on the operator's side (absolute path or URL). */
  source: string;
}
export interface ReleaseResource extends Base {
  type: 'release'; dir: string; artifact: ArtifactRef; keep: number; owner: string;
}

/**
 * An idempotent command, for what has no file or package to compare (bootstrapping an ACL system, creating a
 * database role, a base backup): the probe prints the current state, and when it differs from `want`, `run`
 * runs. Not recorded in the ownership manifest.
 */
export interface ExecResource extends Base {
  type: 'exec';
  name: string;
  /** sh snippet run inside the facts probe; its trimmed stdout is the current state. */
  probe: string;
  want: string;
  /** sh script run (privileged) when the state differs. */
  run: string;
  /** Sent on stdin to `run`; may hold secret references. */
  stdin?: string;
  /** One line for the plan, e.g. `bootstrap ACLs`. */
  description: string;
  /** Also show the probed state in the plan (e.g. `restart (postmaster context): shared_buffers`). Never for secret state. */
  showState?: boolean;
}

export type Resource =
  | PackageResource | GroupResource | UserResource | DirectoryResource | FileResource | UnitResource | ReleaseResource | ExecResource;
export type ResourceType = Resource['type'];

/** Apply order by type; deletions run in the reverse order before creations. */
export const TYPE_ORDER: ResourceType[] = ['package', 'group', 'user', 'directory', 'release', 'file', 'unit', 'exec'];

/** Types recorded in the ownership manifest (and so removed when no longer declared). */
export const OWNED_TYPES: ResourceType[] = ['package', 'group', 'user', 'directory', 'release', 'file', 'unit'];

export function resourceKey(r: Resource): string {
  switch (r.type) {
    case 'package': case 'group': case 'user': case 'unit': case 'exec': return r.name;
    case 'directory': case 'file': return r.path;
    case 'release': return r.dir;
  }
}

export function makeId(type: ResourceType, key: string): string {
  return `${type}:${key}`;
}

/** Splits `type:key`. */
export function parseId(id: string): { type: ResourceType; key: string } {
  const i = id.indexOf(':');
  return { type: id.slice(0, i) as ResourceType, key: id.slice(i + 1) };
}
