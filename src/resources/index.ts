/** Registry of resource types. */
import type { Resource, ResourceType } from '../model/resources.js';
import { group, user } from './account.js';
import { directory } from './directory.js';
import { exec } from './exec.js';
import { file } from './file.js';
import { pkg } from './package.js';
import { release } from './release.js';
import type { ResourceHandler } from './types.js';
import { unit } from './unit.js';

export const HANDLERS: Record<ResourceType, ResourceHandler> = {
  package: pkg, group, user, directory, file, unit, release, exec,
} as unknown as Record<ResourceType, ResourceHandler>;

export function handlerFor(r: Resource | ResourceType): ResourceHandler {
  return HANDLERS[typeof r === 'string' ? r : r.type];
}
