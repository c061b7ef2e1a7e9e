/** Mount handling: overlays for hosts, and finding/removing whatever is still mounted under a lab path. */
import { readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { LabError } from './errors.js';
import { run } from './proc.js';

/** /proc/mounts escapes space, tab, newline and backslash as octal. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points at or below `dir`, deepest first (the order they must be unmounted in). */
export function mountsUnder(dir: string): string[] {
  const base = path.resolve(dir);
  const points = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[1])
    .filter((p): p is string => p !== undefined)
    .map(unescapeMount)
    .filter((p) => p === base || p.startsWith(`${base}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

export async function mountOverlay(lower: string, upper: string, work: string, target: string): Promise<void> {
  await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, target]);
}

/** Unmounts everything under `dir`; falls back to a lazy unmount when something still holds a mount busy. */
export async function unmountAll(dir: string): Promise<void> {
  for (const point of mountsUnder(dir)) {
    const r = await run('umount', [point], { allowFail: true });
    if (r.exitCode !== 0) await run('umount', ['-l', point], { allowFail: true });
  }
  const left = mountsUnder(dir);
  if (left.length > 0) throw new LabError(`could not unmount ${left.join(', ')}`);
}

/**
 * `rm -rf` that refuses to descend into mounts: deleting through a still-mounted overlay or a bind mount
 * would destroy data that is not ours.
 */
export async function removeTree(dir: string): Promise<void> {
  await unmountAll(dir);
  await rm(dir, { recursive: true, force: true });
}
