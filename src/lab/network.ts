/**
 * One Linux bridge per lab carrying 198.18.X.0/24, and one network namespace per host joined to it by a veth
 * pair (eth0 inside). There is deliberately no default route and no NAT: hosts reach each other and the proxy
 * on the bridge address, nothing else.
 */
import { LabError } from './errors.js';
import { bridgeName, labTag, machineName, machineNameRe, subnetOf, vethName } from './paths.js';
import { run } from './proc.js';

interface IpLink {
  ifname: string;
  operstate?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
}

async function ipJson<T>(args: string[]): Promise<T[]> {
  const { stdout } = await run('ip', ['-j', ...args]);
  return stdout.trim() === '' ? [] : (JSON.parse(stdout) as T[]);
}

export async function linkNames(): Promise<string[]> {
  return (await ipJson<IpLink>(['link', 'show'])).map((l) => l.ifname);
}

export async function netnsNames(): Promise<string[]> {
  return (await ipJson<{ name: string }>(['netns', 'list'])).map((n) => n.name);
}

export async function createBridge(lab: string, octet: number): Promise<void> {
  const br = bridgeName(lab);
  await run('ip', ['link', 'add', 'name', br, 'type', 'bridge']);
  await run('ip', ['addr', 'add', `${subnetOf(octet).gateway}/24`, 'dev', br]);
  await run('ip', ['link', 'set', br, 'up']);
}

/** netns `rt-<lab>-hN` with eth0 (the inner end of veth `rtv<tag>N`, whose outer end is on the bridge). */
export async function createHostNetwork(lab: string, index: number, address: string): Promise<void> {
  const ns = machineName(lab, index);
  const veth = vethName(lab, index);
  await run('ip', ['netns', 'add', ns]);
  await run('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  await run('ip', ['link', 'set', veth, 'master', bridgeName(lab), 'up']);
  await run('ip', ['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
  await run('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
}

/** A partition: the host keeps running but its only interface goes down (or comes back). */
export async function setHostLink(lab: string, index: number, up: boolean): Promise<void> {
  await run('ip', ['netns', 'exec', machineName(lab, index), 'ip', 'link', 'set', 'eth0', up ? 'up' : 'down']);
}

export async function hostLinkUp(lab: string, index: number): Promise<boolean> {
  const r = await run('ip', ['-j', '-n', machineName(lab, index), 'link', 'show', 'eth0'], { allowFail: true });
  if (r.exitCode !== 0) return false;
  const [link] = JSON.parse(r.stdout) as IpLink[];
  return link?.operstate === 'UP';
}

/** The lab's bridge or one of its veths (outer ends), by naming convention. */
export function isLabLink(lab: string, link: string): boolean {
  return link === bridgeName(lab) || new RegExp(`^rtv${labTag(lab)}[0-9]+$`).test(link);
}

/**
 * Removes every netns, veth and the bridge of a lab, found by naming convention (works without lab.json).
 * Deleting a netns destroys its eth0 and with it the veth's outer end; the veth sweep catches the rest.
 */
export async function removeNetwork(lab: string): Promise<void> {
  const nsRe = machineNameRe(lab);
  for (const ns of (await netnsNames()).filter((n) => nsRe.test(n))) {
    await run('ip', ['netns', 'del', ns], { allowFail: true });
  }
  for (const link of (await linkNames()).filter((l) => isLabLink(lab, l))) {
    await run('ip', ['link', 'del', link], { allowFail: true });
  }
  const leftNs = (await netnsNames()).filter((n) => nsRe.test(n));
  const leftLinks = (await linkNames()).filter((l) => isLabLink(lab, l));
  if (leftNs.length + leftLinks.length > 0) {
    throw new LabError(`could not remove network of lab ${lab}: ${[...leftNs, ...leftLinks].join(', ')} still present`);
  }
}

/** Interfaces other than this lab's bridge that already hold an address in the lab's /24. */
export async function subnetUsers(lab: string, octet: number): Promise<string[]> {
  const prefix = `${subnetOf(octet).prefix}.`;
  const links = await ipJson<IpLink>(['addr', 'show']);
  return links
    .filter((l) => l.ifname !== bridgeName(lab))
    .filter((l) => (l.addr_info ?? []).some((a) => a.family === 'inet' && a.local.startsWith(prefix)))
    .map((l) => l.ifname);
}
