/** The consul recipe (its own issue; not built yet). */
import type { Recipe } from './types.js';

export const consul: Recipe = {
  name: 'consul',
  resources: () => [],
};
