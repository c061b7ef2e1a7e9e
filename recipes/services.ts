/** The services recipe (its own issue; not built yet). */
import type { Recipe } from './types.js';

export const services: Recipe = {
  name: 'services',
  resources: () => [],
};
