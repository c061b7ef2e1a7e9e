/** Rollout batching: pure helpers shared by the services recipe and its tests. */

/** Instances per batch for a count or a percentage (`"25%"`, rounded up) of `total`; at least 1. */
export function batchSize(spec: number | string, total: number): number {
  if (typeof spec === 'number') return Math.max(1, Math.min(spec, Math.max(total, 1)));
  const pct = Number(spec.replace(/%$/, ''));
  return Math.max(1, Math.min(total, Math.ceil((total * pct) / 100)));
}

/** Splits items, in order, into batches of `size`. */
export function batches<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
