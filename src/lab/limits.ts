/**
 * Kernel limits the lab needs: every booted systemd host uses several inotify instances, and Debian's
 * default of 128 per user runs out at about 20 hosts ("Failed to allocate manager object: Too many open
 * files"). Raise (never lower) them for the machine.
 */
import { readFile, writeFile } from 'node:fs/promises';

const LIMITS: [string, number][] = [
  ['/proc/sys/fs/inotify/max_user_instances', 8192],
  ['/proc/sys/fs/inotify/max_user_watches', 1048576],
];

export async function raiseKernelLimits(log: (l: string) => void): Promise<void> {
  for (const [path, want] of LIMITS) {
    try {
      const have = Number.parseInt((await readFile(path, 'utf8')).trim(), 10);
      if (have < want) {
        await writeFile(path, String(want));
        log(`raised ${path.replace('/proc/sys/', '').replaceAll('/', '.')} from ${have} to ${want}`);
      }
    } catch {
      /* not fatal: boots will say what is wrong */
    }
  }
}
