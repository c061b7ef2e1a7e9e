import type { Host, Platform } from '../src/model/platform.js';
import type { Resource } from '../src/model/resources.js';
import type { Problem } from '../src/config/validate.js';

/**
 * A secret rtctl makes on the operator's side (a gossip key, a token, a CA or certificate), once, and reuses on
 * every later run. Resources refer to it as `${file:<path>}` so its value never enters a plan.
 */
export interface GeneratedSecret {
  /** Path relative to platform.yaml's folder, under `.rtctl/secrets/`, e.g. `.rtctl/secrets/consul/gossip.key`. */
  path: string;
  /** Makes the value (may be async, e.g. WebCrypto). `read` returns another generated secret (made first if needed). */
  generate(read: (path: string) => Promise<string>, now: Date): string | Promise<string>;
  /** Make it again when this says so (e.g. a certificate close to expiry); the plan then shows the change. */
  stale?(value: string, now: Date): boolean;
  /** Derived from other secrets (e.g. the certificate part of a key+certificate file): made again on every run, written only when it differs. */
  derived?: boolean;
}

/**
 * A recipe turns one section of the platform into desired resources for one host. Pure: no I/O, no clock.
 * One module per component (recipes/consul.ts, recipes/haproxy.ts, …), registered in recipes/index.ts.
 */
export interface Recipe {
  name: string;
  resources(platform: Platform, host: Host): Resource[];
  /** Cross-reference rules for this recipe's section; problems at document paths (shown as FILE:LINE:COL). */
  rules?(platform: Platform): Problem[];
  /** Secrets this recipe needs rtctl to generate. */
  secrets?(platform: Platform): GeneratedSecret[];
}
