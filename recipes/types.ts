import type { Host, Platform } from '../src/model/platform.js';
import type { Resource } from '../src/model/resources.js';

/**
 * A recipe turns one section of the platform into desired resources for one host. Pure: no I/O, no clock.
 * One module per component (recipes/consul.ts, recipes/haproxy.ts, …), registered in recipes/index.ts.
 */
export interface Recipe {
  name: string;
  resources(platform: Platform, host: Host): Resource[];
}
