/** Writes schemas/platform.schema.json from the TypeBox definition (the one source of truth). */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PlatformSchema } from '../src/model/schema.js';

export function schemaJson(): string {
  return `${JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', ...PlatformSchema }, null, 2)}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const out = new URL('../../schemas/platform.schema.json', import.meta.url);
  writeFileSync(out, schemaJson());
  process.stdout.write(`wrote ${fileURLToPath(out)}\n`);
}
