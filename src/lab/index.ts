/**
 * `rtctl lab`: real Debian hosts on this machine (systemd-nspawn machines on overlays of one cached rootfs,
 * each in its own network namespace on a per-lab bridge in 198.18.0.0/15), reachable with OpenSSH and strict
 * host-key checking, for end-to-end tests and demos. See docs in /work/shared/docs/lab-notes.md.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { LabError } from './errors.js';
import { bootHost, prepareHost, probeHost, runningPid, stopHostProcess, waitReady } from './hosts.js';
import { mountsUnder, removeTree } from './mounts.js';
import {
  createBridge, createHostNetwork, hostLinkUp, isLabLink, linkNames, netnsNames, removeNetwork, setHostLink, subnetUsers,
} from './network.js';
import {
  DEFAULT_HOSTS, DEFAULT_LAB, PROXY_PORT, bridgeName, hostAddress, hostName, labDir, labFiles, labOctet,
  machineName, machineNameRe, stateRoot, subnetOf, validateHostCount, validateName,
} from './paths.js';
import { checkPrerequisites } from './prereqs.js';
import { findProcesses, isAlive, run, terminate } from './proc.js';
import { startProxy, stopProxy } from './proxy.js';
import { raiseKernelLimits } from './limits.js';
import { ensureRootfs } from './rootfs.js';
import { readState, toInfo, writeState } from './state.js';
import type { LabHost, LabInfo, LabState } from './state.js';

export type { LabHost, LabInfo } from './state.js';
export { LabError } from './errors.js';
export { checkPrerequisites } from './prereqs.js';
export { sshArgs } from './hosts.js';

export interface LabOptions {
  /** default 'default' */
  name?: string;
  /** default 4, max 40 */
  hosts?: number;
  log?: (line: string) => void;
}

export type HostState = 'running' | 'stopped' | 'degraded' | 'starting' | 'unreachable';

/** How long a host may take from nspawn start to ssh + `running`; generous because boots share 2 cores. */
const BOOT_TIMEOUT_MS = 120_000;
/** Parallel host preparation (mount, ip, ssh-keygen): enough to overlap the waits without a process storm. */
const PREPARE_CONCURRENCY = 8;
/** SIGTERM lets nspawn power the host off cleanly; after this it gets SIGKILL. */
const STOP_GRACE_MS = 5_000;

const noop = () => undefined;

/** Creates lab `name` (replacing any leftovers of an earlier run of the same name) and waits until every host is up. */
export async function labUp(opts: LabOptions = {}): Promise<LabInfo> {
  const name = validateName(opts.name ?? DEFAULT_LAB);
  const count = validateHostCount(opts.hosts ?? DEFAULT_HOSTS);
  const log = opts.log ?? noop;
  await requirePrerequisites();
  await raiseKernelLimits(log);
  await teardown(name, noop);
  const octet = labOctet(name);
  await assertSubnetFree(name, octet);
  const rootfs = await ensureRootfs(log);
  const started = Date.now();
  try {
    const info = await createLab(name, count, octet, rootfs, log);
    log(`lab ${name}: ${count} host${count === 1 ? '' : 's'} up on ${info.subnet} in ${seconds(started)}`);
    return info;
  } catch (err) {
    // A half-built lab would leak namespaces, mounts and machines; keep it only when asked to, for debugging.
    if (process.env.RTCTL_LAB_KEEP_ON_FAILURE !== '1') await teardown(name, noop).catch(noop);
    throw err;
  }
}

/** Removes every trace of lab `name` except the cached rootfs. Works without (or with a partial) lab.json. */
export async function labDown(opts: { name?: string; log?: (l: string) => void } = {}): Promise<void> {
  const name = validateName(opts.name ?? DEFAULT_LAB);
  const log = opts.log ?? noop;
  // Only root is needed to remove a lab (ip, mount and kill); a machine missing debootstrap can still clean up.
  if (process.getuid?.() !== 0) throw new LabError('rtctl lab down must run as root: run it with sudo');
  const started = Date.now();
  await teardown(name, log);
  log(`lab ${name}: removed in ${seconds(started)}`);
}

/** lab.json of lab `name`, without touching any host. null when there is no such lab. */
export function labInfo(name: string = DEFAULT_LAB): LabInfo | null {
  const state = readState(validateName(name));
  return state ? toInfo(state) : null;
}

export async function labStatus(opts: { name?: string } = {}): Promise<{
  info: LabInfo | null;
  hosts: { name: string; address: string; state: HostState }[];
}> {
  const name = validateName(opts.name ?? DEFAULT_LAB);
  const state = readState(name);
  if (!state) return { info: null, hosts: [] };
  const info = toInfo(state);
  const hosts = await Promise.all(
    info.hosts.map(async (h, i) => ({ name: h.name, address: h.address, state: await hostState(info, state, h, i + 1) })),
  );
  return { info, hosts };
}

async function hostState(info: LabInfo, state: LabState, host: LabHost, index: number): Promise<HostState> {
  if (!runningPid(info.name, index, state.pids[host.name])) return 'stopped';
  if (!(await hostLinkUp(info.name, index))) return 'unreachable';
  return probeHost(info, host, false, 10_000);
}

/** Power cut: SIGTERM to the host's systemd-nspawn, SIGKILL if it is still there after `graceMs` (default 5 s). */
export async function stopHost(name: string, host: string, opts: { graceMs?: number } = {}): Promise<void> {
  const { state, index } = requireHost(name, host);
  const h = hostName(index);
  await stopHostProcess(name, index, opts.graceMs ?? STOP_GRACE_MS, state.pids[h]);
  const fresh = readState(name) ?? state;
  delete fresh.pids[h];
  await writeState(fresh);
}

/** Boots a stopped host again on its existing overlay (same host key, same data) and waits until ssh answers. */
export async function startHost(name: string, host: string): Promise<void> {
  const { state, index } = requireHost(name, host);
  const h = hostName(index);
  if (!runningPid(name, index, state.pids[h])) {
    const pid = await bootHost(name, index);
    const fresh = readState(name) ?? state;
    fresh.pids[h] = pid;
    await writeState(fresh);
  }
  await waitReady(toInfo(state), index, Date.now() + BOOT_TIMEOUT_MS);
}

/** Network partition of one host: its eth0 goes down (up = false) or comes back (up = true). */
export async function setLink(name: string, host: string, up: boolean): Promise<void> {
  const { index } = requireHost(name, host);
  await setHostLink(name, index, up);
}

function requireHost(name: string, host: string): { state: LabState; index: number } {
  const state = readState(validateName(name));
  if (!state) throw new LabError(`no lab named ${name} (run rtctl lab up --name ${name})`);
  const i = state.hosts.findIndex((h) => h.name === host || h.address === host || h.machine === host);
  if (i < 0) throw new LabError(`lab ${name} has no host ${host} (hosts: ${state.hosts.map((h) => h.name).join(', ')})`);
  return { state, index: i + 1 };
}

async function requirePrerequisites(): Promise<void> {
  const missing = await checkPrerequisites();
  if (missing.length > 0) throw new LabError(`rtctl lab cannot run here:\n  - ${missing.join('\n  - ')}`);
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

async function createLab(name: string, count: number, octet: number, rootfs: string, log: (l: string) => void): Promise<LabInfo> {
  const files = labFiles(name);
  const { subnet, gateway } = subnetOf(octet);
  await mkdir(files.dir, { recursive: true, mode: 0o700 });
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `rtctl-lab-${name}`, '-f', files.key]);
  const hosts: LabHost[] = Array.from({ length: count }, (_, i) => ({
    name: hostName(i + 1),
    address: hostAddress(octet, i + 1),
    machine: machineName(name, i + 1),
  }));
  const state: LabState = {
    name, subnet, gateway, proxy: `http://${gateway}:${PROXY_PORT}`, dir: files.dir, keyPath: files.key,
    knownHostsPath: files.knownHosts, user: 'deploy', hosts, pids: {}, createdAt: new Date().toISOString(),
  };
  await writeState(state);

  log(`lab ${name}: bridge ${bridgeName(name)} ${gateway}/24, proxy ${state.proxy}`);
  await createBridge(name, octet);
  state.proxyPid = await startProxy(name, gateway);
  await writeState(state);

  log(`lab ${name}: preparing ${count} host overlays and network namespaces`);
  const setup = {
    rootfs,
    hostsFile: hostsFile(gateway, hosts),
    clientPublicKey: await readFile(`${files.key}.pub`, 'utf8'),
    proxy: state.proxy,
  };
  const knownHosts = await mapLimit(hosts, PREPARE_CONCURRENCY, async (h, i) => {
    await createHostNetwork(name, i + 1, h.address);
    return prepareHost(name, i + 1, h, setup);
  });
  await writeFile(files.knownHosts, `${knownHosts.join('\n')}\n`, { mode: 0o644 });

  log(`lab ${name}: booting ${count} hosts`);
  for (const [i, h] of hosts.entries()) {
    state.pids[h.name] = await bootHost(name, i + 1);
  }
  await writeState(state);

  const info = toInfo(state);
  const deadline = Date.now() + BOOT_TIMEOUT_MS;
  const results = await Promise.allSettled(hosts.map((_, i) => waitReady(info, i + 1, deadline)));
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as Error);
  if (failures.length > 0) {
    const more = failures.length > 1 ? `\n(${failures.length - 1} more host(s) failed too)` : '';
    throw new LabError(`lab ${name}: ${failures[0]?.message ?? 'a host failed'}${more}`, { cause: failures[0] });
  }
  return info;
}

function hostsFile(gateway: string, hosts: LabHost[]): string {
  return [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    `${gateway}\tgateway proxy`,
    ...hosts.map((h) => `${h.address}\t${h.name} ${h.machine}`),
    '',
  ].join('\n');
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Subnets are derived from lab names, so two names can hash to the same /24. Refuse rather than put two
 * labs on one subnet: another live lab's bridge, or any interface already addressed in that /24.
 */
async function assertSubnetFree(name: string, octet: number): Promise<void> {
  const { subnet } = subnetOf(octet);
  const links = new Set(await linkNames());
  const root = stateRoot();
  const others = existsSync(root) ? readdirSync(root).filter((d) => d !== name) : [];
  for (const other of others) {
    const s = readState(other);
    if (!s || s.subnet !== subnet) continue;
    const live = links.has(bridgeName(other)) || Object.values(s.pids).some((pid) => isAlive(pid));
    if (live) {
      throw new LabError(
        `lab ${name} would use subnet ${subnet}, which lab ${other} already uses: pick another lab name, or remove it with rtctl lab down --name ${other}`,
      );
    }
  }
  const users = await subnetUsers(name, octet);
  if (users.length > 0) {
    throw new LabError(`lab ${name} would use subnet ${subnet}, but ${users.join(', ')} already has an address in it: pick another lab name`);
  }
}

/**
 * Stops and removes everything of lab `name`, whatever state it is in: processes (recorded pids, pid files,
 * then any nspawn/tinyproxy whose cmdline names this lab's dir), mounts under the lab dir, netns, veths,
 * bridge, and finally the lab dir.
 */
async function teardown(name: string, log: (l: string) => void): Promise<void> {
  const dir = labDir(name);
  const state = readState(name);
  const indexes = hostIndexes(name, state);
  if (indexes.length > 0) log(`lab ${name}: stopping ${indexes.length} host(s)`);
  await Promise.all(indexes.map((i) => stopHostProcess(name, i, STOP_GRACE_MS, state?.pids[hostName(i)])));
  // Anything a killed `lab up` started before it could record the pid.
  await Promise.all(
    findProcesses('systemd-nspawn', `${dir}/`).map((pid) => stopStray(pid, 'systemd-nspawn', `${dir}/`)),
  );
  await stopProxy(name, state?.proxyPid);
  await Promise.all(findProcesses('tinyproxy', labFiles(name).proxyConf).map((pid) => stopStray(pid, 'tinyproxy', labFiles(name).proxyConf)));
  log(`lab ${name}: removing mounts, network and ${dir}`);
  await removeTree(dir);
  await removeNetwork(name);
}

function stopStray(pid: number, program: string, marker: string): Promise<void> {
  return terminate(pid, program, marker, STOP_GRACE_MS);
}

/** Host numbers known from lab.json or from host dirs (either may be missing after a killed run). */
function hostIndexes(name: string, state: LabState | null): number[] {
  const found = new Set<number>(state?.hosts.map((_, i) => i + 1) ?? []);
  const hostsDir = `${labDir(name)}/hosts`;
  if (existsSync(hostsDir)) {
    for (const d of readdirSync(hostsDir)) {
      const m = /^h([0-9]+)$/.exec(d);
      if (m) found.add(Number(m[1]));
    }
  }
  return [...found].sort((a, b) => a - b);
}

/** What of lab `name` still exists on this machine (empty after a clean labDown); for tests and diagnostics. */
export async function labLeftovers(name: string = DEFAULT_LAB): Promise<string[]> {
  validateName(name);
  const nsRe = machineNameRe(name);
  const left: string[] = [];
  for (const ns of await netnsNames()) if (nsRe.test(ns)) left.push(`netns ${ns}`);
  for (const l of await linkNames()) {
    if (isLabLink(name, l)) left.push(`link ${l}`);
  }
  for (const m of mountsUnder(labDir(name))) left.push(`mount ${m}`);
  for (const pid of findProcesses('systemd-nspawn', `${labDir(name)}/`)) left.push(`systemd-nspawn pid ${pid}`);
  for (const pid of findProcesses('tinyproxy', labFiles(name).proxyConf)) left.push(`tinyproxy pid ${pid}`);
  if (existsSync(labDir(name))) left.push(`dir ${labDir(name)}`);
  return left;
}
