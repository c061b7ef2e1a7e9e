/**
 * The normalized platform: platform.yaml after schema checks, defaults and cross-reference rules.
 * Recipes read this (never the raw document) to produce resources per host.
 */
import type { ArtifactRef } from './resources.js';
import type { PlatformDoc } from './schema.js';

export interface JumpHost {
  address: string;
  port: number;
  user: string;
  keyFile?: string;
}

export interface Host {
  name: string;
  address: string;
  port: number;
  user: string;
  become: boolean;
  keyFile?: string;
  knownHostsFile: string;
  jump?: JumpHost;
  labels: string[];
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  /** Index in the document's `hosts` list (for error positions). */
  index: number;
}

export interface Platform {
  name: string;
  /** Absolute path of platform.yaml. */
  file: string;
  /** Its folder; relative paths in the file are relative to it. */
  dir: string;
  hosts: Host[];
  artifacts: Record<string, ArtifactRef>;
  /** The validated document, for recipes. */
  doc: PlatformDoc;
  /** Template files referenced by the document, read by the loader: path → content. */
  templates: Record<string, string>;
}

/** Expands a selector (host names or labels; `all`; omitted = all) into host names, in host order. */
export function selectHosts(hosts: readonly Host[], selector: readonly string[] | undefined): Host[] {
  if (!selector || selector.includes('all')) return [...hosts];
  return hosts.filter((h) => selector.includes(h.name) || h.labels.some((l) => selector.includes(l)));
}
