/** Generated files stay in sync with the schema they come from (run `npm run generate` after a schema change). */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { schemaJson } from '../../scripts/generate-schema.js';
import { referenceMarkdown } from '../../scripts/generate-docs.js';

describe('generated from src/model/schema.ts', () => {
  it('schemas/platform.schema.json is current', () => {
    expect(readFileSync(new URL('../../schemas/platform.schema.json', import.meta.url), 'utf8')).toBe(schemaJson());
  });
  it('docs/platform-yaml.md is current', () => {
    expect(readFileSync(new URL('../../docs/platform-yaml.md', import.meta.url), 'utf8')).toBe(referenceMarkdown());
  });
  it('the example platform.yaml points editors at the schema', () => {
    expect(readFileSync(new URL('../../platform.yaml', import.meta.url), 'utf8').split('\n')[0]).toBe('# yaml-language-server: $schema=./schemas/platform.schema.json');
  });
});
