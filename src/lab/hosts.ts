/**
 * Lab hosts: an overlay on the cached rootfs holding everything host-specific, booted with systemd-nspawn
 * inside the host's network namespace.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LabError } from './errors.js';
import { mountOverlay, mountsUnder } from './mounts.js';
import { hostPaths, machineName } from './paths.js';
import { isAlive, pidMatches, readPidFile, run, spawnDetached, terminate } from './proc.js';
import { tcpOpen } from './proxy.js';
import { DEPLOY_USER, userIds } from './rootfs.js';
import type { LabHost, LabInfo } from './state.js';

export interface HostSetup {
  rootfs: string;
  hostsFile: string;
  clientPublicKey: string;
  proxy: string;
}

/** Creates and mounts the host's overlay and writes its identity into it. Returns its known_hosts line. */
export async function prepareHost(lab: string, index: number, host: LabHost, setup: HostSetup): Promise<string> {
  const p = hostPaths(lab, index);
  for (const d of [p.upper, p.work, p.root]) await mkdir(d, { recursive: true });
  await mountOverlay(setup.rootfs, p.upper, p.work, p.root);
  // Written through the mounted overlay, so every file lands in this host's upper layer only.
  const etc = (f: string) => path.join(p.root, 'etc', f);
  await writeFile(etc('hostname'), `${host.name}\n`);
  await writeFile(etc('hosts'), setup.hostsFile);
  await writeFile(etc('machine-id'), `${randomBytes(16).toString('hex')}\n`);
  await writeFile(etc('apt/apt.conf.d/01proxy'), `Acquire::http::Proxy "${setup.proxy}";\n`);
  // systemd creates /run/nologin early in boot and systemd-user-sessions removes it; on a loaded 2-core
  // machine that unit was seen failing, leaving sshd refusing every non-root login. Lab hosts don't need it.
  await mkdir(etc('tmpfiles.d'), { recursive: true });
  await writeFile(etc('tmpfiles.d/systemd-nologin.conf'), '# rtctl lab: no /run/nologin during boot\n');
  await authorize(p.root, '/root', 0, 0, setup.clientPublicKey);
  const { uid, gid } = await userIds(p.root, DEPLOY_USER);
  await authorize(p.root, `/home/${DEPLOY_USER}`, uid, gid, setup.clientPublicKey);
  const keyFile = etc('ssh/ssh_host_ed25519_key');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${host.machine}`, '-f', keyFile]);
  const [type, key] = (await readFile(`${keyFile}.pub`, 'utf8')).trim().split(/\s+/);
  return `${host.address} ${type} ${key}`;
}

async function authorize(root: string, home: string, uid: number, gid: number, publicKey: string): Promise<void> {
  const dir = path.join(root, home, '.ssh');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chown(dir, uid, gid);
  const file = path.join(dir, 'authorized_keys');
  await writeFile(file, publicKey.endsWith('\n') ? publicKey : `${publicKey}\n`, { mode: 0o600 });
  await chown(file, uid, gid);
}

/** Boots the host in the background; returns the systemd-nspawn pid (also written to the host's pid file). */
export async function bootHost(lab: string, index: number): Promise<number> {
  const p = hostPaths(lab, index);
  if (mountsUnder(p.root)[0] !== p.root) throw new LabError(`overlay of ${machineName(lab, index)} is not mounted at ${p.root}`);
  const ns = machineName(lab, index);
  // --register=no --keep-unit: no systemd on this machine to register with or to create a scope.
  const args = [
    '-D', p.root, '--boot', '--register=no', '--keep-unit', '--capability=CAP_NET_ADMIN',
    `--network-namespace-path=/run/netns/${ns}`, '-M', ns,
  ];
  await writeFile(p.console, `--- boot ${new Date().toISOString()}\n`, { flag: 'a' });
  const pid = spawnDetached('systemd-nspawn', args, p.console);
  await writeFile(p.pidFile, `${pid}\n`);
  return pid;
}

/** The nspawn pid of a host if it is running (recorded pid first, then its pid file); cmdline verified. */
export function runningPid(lab: string, index: number, recorded?: number): number | null {
  const p = hostPaths(lab, index);
  for (const pid of [recorded, readPidFile(p.pidFile)]) {
    if (pid && isAlive(pid) && pidMatches(pid, 'systemd-nspawn', p.root)) return pid;
  }
  return null;
}

/** SIGTERM (nspawn then asks the host's systemd to power off) and SIGKILL after `graceMs`. */
export async function stopHostProcess(lab: string, index: number, graceMs: number, recorded?: number): Promise<void> {
  const p = hostPaths(lab, index);
  for (const pid of new Set([recorded, readPidFile(p.pidFile)])) {
    if (pid) await terminate(pid, 'systemd-nspawn', p.root, graceMs);
  }
}

export function sshArgs(info: LabInfo, host: string): string[] {
  const h = info.hosts.find((x) => x.name === host || x.address === host || x.machine === host);
  if (!h) throw new LabError(`lab ${info.name} has no host ${host} (hosts: ${info.hosts.map((x) => x.name).join(', ')})`);
  return [
    '-F', '/dev/null',
    '-i', info.keyPath,
    '-o', 'IdentitiesOnly=yes',
    '-o', `UserKnownHostsFile=${info.knownHostsPath}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'BatchMode=yes',
    '-o', 'ConnectTimeout=5',
    '-o', 'LogLevel=ERROR',
    `${info.user}@${h.address}`,
  ];
}

export type HostProbe = 'running' | 'degraded' | 'starting' | 'unreachable';

/** One ssh round trip: the host's own view of its boot (`systemctl is-system-running`). */
export async function probeHost(info: LabInfo, host: LabHost, wait: boolean, timeoutMs: number): Promise<HostProbe> {
  const cmd = wait ? ['systemctl', 'is-system-running', '--wait'] : ['systemctl', 'is-system-running'];
  const r = await run('ssh', [...sshArgs(info, host.name), ...cmd], { allowFail: true, timeoutMs });
  const state = r.stdout.trim();
  if (state === 'running' || state === 'degraded') return state;
  if (state === '') return 'unreachable';
  // initializing, starting, maintenance, stopping: up enough to answer, not yet (or no longer) serving.
  return state === 'maintenance' ? 'degraded' : 'starting';
}

/**
 * Waits until the host answers OpenSSH with strict host-key checking and its systemd reports running or
 * degraded. A cheap TCP check first, so a booting host does not cost a key exchange every poll.
 */
export async function waitReady(info: LabInfo, index: number, deadline: number): Promise<void> {
  const host = info.hosts[index - 1];
  if (!host) throw new LabError(`lab ${info.name} has no host #${index}`);
  let last = 'sshd not listening yet';
  while (Date.now() < deadline) {
    if (!runningPid(info.name, index)) {
      last = 'systemd-nspawn exited';
      break;
    }
    if (await tcpOpen(host.address, 22, 1000)) {
      const state = await probeHost(info, host, true, Math.max(1000, deadline - Date.now()));
      if (state === 'running' || state === 'degraded') return;
      last = state === 'unreachable' ? 'ssh did not succeed' : `systemd is ${state}`;
    }
    await sleep(250);
  }
  const p = hostPaths(info.name, index);
  throw new LabError(
    `lab host ${host.name} (${host.address}, machine ${host.machine}) did not come up: ${last}.\n` +
      `Last lines of its console (${p.console}):\n${await consoleTail(p.console, 20)}`,
  );
}

async function consoleTail(file: string, lines: number): Promise<string> {
  if (!existsSync(file)) return '(no console log)';
  const text = await readFile(file, 'utf8');
  // The console is a terminal stream: strip colour codes and carriage returns for a readable error.
  const clean = text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '');
  return clean.trimEnd().split('\n').slice(-lines).map((l) => `  ${l}`).join('\n');
}
