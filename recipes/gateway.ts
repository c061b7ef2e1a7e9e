/** The gateway recipe (its own issue; not built yet). */
import type { Recipe } from './types.js';

export const gateway: Recipe = {
  name: 'gateway',
  resources: () => [],
};
