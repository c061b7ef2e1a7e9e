/**
 * Makes the secrets recipes ask for (gossip keys, tokens, CA and certificates) on the operator's side, once,
 * as 0600 files under the platform's `.rtctl/secrets/`; later runs reuse them. Values are never printed.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Platform } from '../model/platform.js';
import type { GeneratedSecret } from '../../recipes/types.js';
import { RECIPES } from '../../recipes/index.js';
import { InternalError } from '../errors.js';

export function generatedSecrets(p: Platform): GeneratedSecret[] {
  return RECIPES.flatMap((r) => r.secrets?.(p) ?? []);
}

/** Creates missing (or stale) generated secrets; returns the paths it wrote. */
export async function ensureGenerated(p: Platform, now = new Date()): Promise<string[]> {
  const all = new Map(generatedSecrets(p).map((g) => [g.path, g]));
  const written: string[] = [];
  const making = new Set<string>();
  const done = new Set<string>();
  const read = async (path: string): Promise<string> => {
    const g = all.get(path);
    const file = resolve(p.dir, path);
    if (!g) return readFileSync(file, 'utf8');
    const current = existsSync(file) ? readFileSync(file, 'utf8') : undefined;
    if (done.has(path) && current !== undefined) return current;
    if (current !== undefined && !g.derived && !g.stale?.(current, now)) return current;
    if (making.has(path)) throw new InternalError(`generated secret ${path} depends on itself`);
    making.add(path);
    const value = await g.generate(read, now);
    done.add(path);
    if (value === current) return current;
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(`${file}.tmp`, value, { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
    written.push(path);
    return value;
  };
  for (const path of all.keys()) await read(path);
  return written;
}
