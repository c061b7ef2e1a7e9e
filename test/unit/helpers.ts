/** In-memory builders for unit tests: platforms from YAML text, facts from field maps. */
import { parsePlatform } from '../../src/config/load.js';
import type { HostFacts } from '../../src/facts/probe.js';
import type { Platform } from '../../src/model/platform.js';
import type { RawFact } from '../../src/resources/types.js';
import type { SecretSource } from '../../src/secrets.js';
import { createHash } from 'node:crypto';
import { ValidationError } from '../../src/errors.js';

export const noSecrets: SecretSource = { env: () => undefined, file: () => undefined };
export const fakeSecrets = (values: Record<string, string>): SecretSource => ({
  env: (n) => values[`env:${n}`],
  file: (p) => values[`file:${p}`],
});

export function platformFrom(yaml: string, secrets: SecretSource = noSecrets): Platform {
  return parsePlatform(yaml, '/tmp/rtctl-test/platform.yaml', 'platform.yaml', { secrets });
}

export function facts(host: string, resources: Record<string, RawFact> = {}, manifest: [string, string][] = []): HostFacts {
  return {
    host, os: 'debian 12', arch: 'x86_64', hostname: host,
    manifest: manifest.map(([type, key]) => ({ type: type as never, key })),
    pending: [],
    resources: new Map(Object.entries(resources)),
  };
}

export const sha = (s: string) => createHash('sha256').update(s).digest('hex');
export const plainCtx = { contentSha256: sha };

/** Validation problems of a platform text as `LINE:COL: path: message` (empty when it is valid). */
export function problemsOf(yaml: string, secrets: SecretSource = noSecrets): string[] {
  try {
    platformFrom(yaml, secrets);
  } catch (e) {
    if (e instanceof ValidationError) return e.diagnostics.map((d) => `${d.line}:${d.col}: ${d.message}`);
    throw e;
  }
  return [];
}
