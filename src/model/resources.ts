/**
 * Desired-state resources: what recipes produce for each host, and what the planner diffs against facts.
 * Pure data. Each resource type lives in src/resources/<type>.ts with its probe, diff and apply steps.
 */

/** Where in platform.yaml a resource came from, for messages. */
export interface Origin {
  /** Document path, e.g. `files/2`. */
  path: string;
}

interface Base {
  /** Unique per host: `<type>:<key>`, e.g. `file:/etc/motd`. */
  id: string;
  /** Resource ids (on the same host) whose change must restart/reload this one's unit; see `notify`. */
  notify?: string[];
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

export type Resource =
  | PackageResource | GroupResource | UserResource | DirectoryResource | FileResource | UnitResource | ReleaseResource;
export type ResourceType = Resource['type'];

/** Apply order by type; deletions run in the reverse order before creations. */
export const TYPE_ORDER: ResourceType[] = ['package', 'group', 'user', 'directory', 'release', 'file', 'unit'];

export function resourceKey(r: Resource): string {
  switch (r.type) {
    case 'package': case 'group': case 'user': case 'unit': return r.name;
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
