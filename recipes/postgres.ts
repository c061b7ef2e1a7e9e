/** The postgres recipe (its own issue; not built yet). */
import type { Recipe } from './types.js';

export const postgres: Recipe = {
  name: 'postgres',
  resources: () => [],
};
