/**
 * Names, addresses and directories of a lab. Everything here is derived deterministically from the lab name,
 * so `labDown` can find a lab's leftovers (netns, veths, bridge, mounts) even when lab.json is gone.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { LabError } from './errors.js';

export const DEFAULT_LAB = 'default';
export const MAX_HOSTS = 40;
export const DEFAULT_HOSTS = 4;
/** Hosts are h1..hN at .11, .12, ...; .1 is the gateway/proxy on the bridge. */
export const FIRST_HOST_OCTET = 11;
export const PROXY_PORT = 3128;
/** Only the network-testing range 198.18.0.0/15 is ever used (RFC 2544). */
export const LAB_SUPERNET = '198.18.0.0/15';

const NAME_RE = /^[a-z0-9-]{1,12}$/;

export function validateName(name: string): string {
  if (!NAME_RE.test(name)) {
    throw new LabError(`invalid lab name ${JSON.stringify(name)}: use 1-12 characters from a-z, 0-9 and '-'`);
  }
  return name;
}

export function validateHostCount(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_HOSTS) {
    throw new LabError(`invalid host count ${n}: a lab has 1 to ${MAX_HOSTS} hosts`);
  }
  return n;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Third octet of the lab's /24: 'default' -> 1, anything else hashed into 2..250. */
export function labOctet(name: string): number {
  if (name === DEFAULT_LAB) return 1;
  return 2 + (digest(name).readUInt32BE(0) % 249);
}

/**
 * Short fixed-length tag for interface names, which the kernel limits to 15 characters:
 * `rtb-` + 6 = 10 for the bridge, `rtv` + 6 + up to 2 digits = 11 for veths.
 */
export function labTag(name: string): string {
  return digest(`tag:${name}`).toString('hex').slice(0, 6);
}

export function bridgeName(name: string): string {
  return `rtb-${labTag(name)}`;
}

export function vethName(name: string, index: number): string {
  return `rtv${labTag(name)}${index}`;
}

export function hostName(index: number): string {
  return `h${index}`;
}

/** Unique across labs on this machine: used both as netns name and as nspawn machine name. */
export function machineName(name: string, index: number): string {
  return `rt-${name}-${hostName(index)}`;
}

/** Matches this lab's netns/machine names, to find leftovers without lab.json. */
export function machineNameRe(name: string): RegExp {
  return new RegExp(`^rt-${name}-h([0-9]+)$`);
}

export function subnetOf(octet: number): { subnet: string; gateway: string; prefix: string } {
  const prefix = `198.18.${octet}`;
  return { subnet: `${prefix}.0/24`, gateway: `${prefix}.1`, prefix };
}

export function hostAddress(octet: number, index: number): string {
  return `198.18.${octet}.${FIRST_HOST_OCTET + index - 1}`;
}

export function stateRoot(): string {
  return path.join(process.env.RTCTL_STATE_DIR ?? '/var/lib/rtctl', 'lab');
}

export function labDir(name: string): string {
  return path.join(stateRoot(), name);
}

export function cacheDir(): string {
  return process.env.RTCTL_CACHE_DIR ?? '/var/cache/rtctl';
}

export function rootfsDir(): string {
  return path.join(cacheDir(), 'rootfs-bookworm');
}

/** Per-host layout under the lab dir. */
export function hostPaths(name: string, index: number) {
  const dir = path.join(labDir(name), 'hosts', hostName(index));
  return {
    dir,
    upper: path.join(dir, 'upper'),
    work: path.join(dir, 'work'),
    root: path.join(dir, 'root'),
    console: path.join(dir, 'console.log'),
    pidFile: path.join(dir, 'nspawn.pid'),
  };
}

export function labFiles(name: string) {
  const dir = labDir(name);
  return {
    dir,
    state: path.join(dir, 'lab.json'),
    key: path.join(dir, 'id_ed25519'),
    knownHosts: path.join(dir, 'known_hosts'),
    proxyConf: path.join(dir, 'tinyproxy.conf'),
    proxyFilter: path.join(dir, 'tinyproxy.filter'),
    proxyPid: path.join(dir, 'tinyproxy.pid'),
    proxyLog: path.join(dir, 'tinyproxy.log'),
  };
}
