/** lab.json: the LabInfo handed to callers plus what teardown needs (pids). Written atomically. */
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { labFiles } from './paths.js';

export interface LabHost {
  name: string;
  address: string;
  machine: string;
}

export interface LabInfo {
  name: string;
  /** '198.18.X.0/24' */
  subnet: string;
  /** 198.18.X.1, the bridge address */
  gateway: string;
  /** http://198.18.X.1:3128 */
  proxy: string;
  dir: string;
  keyPath: string;
  knownHostsPath: string;
  user: 'deploy';
  hosts: LabHost[];
}

export interface LabState extends LabInfo {
  /** nspawn pid per host name; a host without one is not running. */
  pids: Record<string, number>;
  proxyPid?: number;
  createdAt: string;
}

export async function writeState(state: LabState): Promise<void> {
  const file = labFiles(state.name).state;
  await writeFile(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  await rename(`${file}.tmp`, file);
}

/** null when missing or unreadable (a run killed before writing it, or a half-removed lab). */
export function readState(name: string): LabState | null {
  try {
    const s = JSON.parse(readFileSync(labFiles(name).state, 'utf8')) as Partial<LabState>;
    if (s.name !== name || !Array.isArray(s.hosts) || typeof s.subnet !== 'string') return null;
    return { pids: {}, ...s } as LabState;
  } catch {
    return null;
  }
}

export function toInfo(s: LabState): LabInfo {
  const { name, subnet, gateway, proxy, dir, keyPath, knownHostsPath, user, hosts } = s;
  return { name, subnet, gateway, proxy, dir, keyPath, knownHostsPath, user, hosts: hosts.map((h) => ({ ...h })) };
}
