/**
 * The `database` section of platform.yaml (its own issue). Registered in src/model/schema.ts.
 * Not built yet: the section is accepted only as an empty mapping.
 */
import { Type } from '@sinclair/typebox';

export const DatabaseSection = Type.Object({}, { additionalProperties: false, description: 'Not available yet.' });
