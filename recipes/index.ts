/** The recipe registry, and the one function that turns a platform into desired resources per host. */
import type { Platform } from '../src/model/platform.js';
import type { Resource } from '../src/model/resources.js';
import { consul } from './consul.js';
import { gateway } from './gateway.js';
import { haproxy } from './haproxy.js';
import { keepalived } from './keepalived.js';
import { postgres } from './postgres.js';
import { primitives } from './primitives.js';
import { services } from './services.js';
import type { Recipe } from './types.js';

export const RECIPES: Recipe[] = [primitives, consul, haproxy, keepalived, gateway, postgres, services];

/** host name → resources, in declaration order, for every host. */
export function desiredResources(p: Platform): Map<string, Resource[]> {
  return new Map(p.hosts.map((h) => [h.name, RECIPES.flatMap((r) => r.resources(p, h))]));
}
