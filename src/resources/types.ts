/**
 * The contract every resource type implements (cf. Pulumi's ResourceProvider): a probe (shell function run
 * inside the one facts script), a pure parser for its output, a pure diff against facts, and apply steps as data.
 */
import type { Resource, ResourceType } from '../model/resources.js';

/** Raw probe output for one resource: field → value (from `@id<TAB>field<TAB>value` lines). */
export type RawFact = Record<string, string>;

export type Action = 'create' | 'update' | 'delete' | 'restart' | 'reload';

/** One planned change on one host. */
export interface Change {
  host: string;
  id: string;
  type: ResourceType;
  action: Action;
  /** The desired resource (for deletes: the last known description, from the manifest). */
  resource: Resource;
  /** Human-readable attribute changes, e.g. `mode 0644 → 0600`. Never secret values. */
  details: string[];
  /** Unified diff of file content; absent for sensitive content. */
  diff?: string;
  /** Why a restart/reload happens, e.g. `file:/etc/app.conf changed`. */
  reason?: string;
}

/** A step is data; only the applier runs it. */
export type Step =
  | {
      kind: 'sh';
      /** What this step does, for progress lines and errors. */
      desc: string;
      /** POSIX sh script run as `sh -c SCRIPT rtctl ARGS…` (privileged when the host has `become`). */
      script: string;
      args: string[];
      /** Sent on stdin; may hold secret references, resolved just before sending. */
      stdin?: string;
    }
  | { kind: 'upload-artifact'; desc: string; sha256: string; source: string };

/** What a diff may ask of the planner. */
export interface DiffContext {
  /** SHA-256 of content with its secret references resolved (the value itself never leaves the planner). */
  contentSha256(content: string): string;
}

export interface ResourceHandler<R extends Resource = Resource> {
  type: ResourceType;
  /** Shell function definition `p_<type>() { … }` taking the resource key; emits `emit ID FIELD VALUE` lines. */
  probeFunction: string;
  /** Arguments for the probe function (key plus anything the probe needs, e.g. whether content may be read). */
  probeArgs(r: R): string[];
  /** Pure diff: undefined when in sync. */
  diff(desired: R, fact: RawFact, ctx: DiffContext): Omit<Change, 'host' | 'id' | 'type' | 'resource'> | undefined;
  /** Whether a resource last recorded in the manifest still exists (so deleting it is a change). */
  exists(fact: RawFact): boolean;
  steps(change: Change & { resource: R }): Step[];
  /** A minimal resource of this type for a manifest key (used to plan deletions). */
  fromManifest(key: string): R;
}
