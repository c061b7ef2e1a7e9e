/** The keepalived recipe (its own issue; not built yet). */
import type { Recipe } from './types.js';

export const keepalived: Recipe = {
  name: 'keepalived',
  resources: () => [],
};
