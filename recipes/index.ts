/** The recipe registry, and the one function that turns a platform into desired resources per host. */
import type { Platform } from '../src/model/platform.js';
import type { Resource } from '../src/model/resources.js';
import { primitives } from './primitives.js';
import type { Recipe } from './types.js';

export const RECIPES: Recipe[] = [primitives];

/** host name → resources, in declaration order, for every host. */
export function desiredResources(p: Platform): Map<string, Resource[]> {
  return new Map(p.hosts.map((h) => [h.name, RECIPES.flatMap((r) => r.resources(p, h))]));
}
