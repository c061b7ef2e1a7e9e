/** The haproxy recipe (its own issue; not built yet). */
import type { Recipe } from './types.js';

export const haproxy: Recipe = {
  name: 'haproxy',
  resources: () => [],
};
