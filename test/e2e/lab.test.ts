/**
 * `rtctl lab` end to end: a 2-host lab, reached with real OpenSSH, then removed without a trace.
 * Needs root and the packages of scripts/lab-prereqs.sh.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { labDown, labInfo, labStatus, setLink, sshArgs, startHost, stopHost } from '../../src/lab/index.js';
import type { LabInfo } from '../../src/lab/index.js';
import { bridgeName, vethName } from '../../src/lab/paths.js';
import { ssh, teardownLab, withLab } from './helpers/lab.js';

const NAME = 'labt';

/** Independent of src/lab: what the kernel and /proc say is left of the lab. */
async function leftovers(info: LabInfo): Promise<string[]> {
  const left: string[] = [];
  const netns = (await execa('ip', ['netns', 'list'])).stdout;
  for (const line of netns.split('\n')) if (line.startsWith(`rt-${NAME}-`)) left.push(`netns ${line}`);
  const links = (await execa('ip', ['-br', 'link'])).stdout;
  for (const dev of [bridgeName(NAME), vethName(NAME, 1), vethName(NAME, 2)]) {
    if (new RegExp(`^${dev}[@ ]`, 'm').test(links)) left.push(`link ${dev}`);
  }
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) {
    if (line.includes(info.dir)) left.push(`mount ${line}`);
  }
  for (const pid of readdirSync('/proc').filter((e) => /^[0-9]+$/.test(e))) {
    let cmdline = '';
    let stat = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const zombie = / [ZX] /.test(stat.slice(stat.lastIndexOf(')')));
    if (!zombie && cmdline.includes(info.dir) && /systemd-nspawn|tinyproxy/.test(cmdline)) left.push(`process ${pid}`);
  }
  return left;
}

describe('rtctl lab', () => {
  let info: LabInfo;

  beforeAll(async () => {
    info = await withLab(NAME, 2);
  });

  afterAll(async () => {
    await teardownLab(NAME);
  });

  it('describes the lab it created', () => {
    expect(info.hosts.map((h) => h.name)).toEqual(['h1', 'h2']);
    expect(info.subnet).toMatch(/^198\.1[89]\.[0-9]+\.0\/24$/);
    expect(info.proxy).toBe(`http://${info.gateway}:3128`);
    expect(labInfo(NAME)).toEqual(info);
    const known = readFileSync(info.knownHostsPath, 'utf8').trim().split('\n');
    expect(known.map((l) => l.split(' ')[0])).toEqual(info.hosts.map((h) => h.address));
    for (const line of known) expect(line).toMatch(/^198\.18\.[0-9.]+ ssh-ed25519 AAAA[A-Za-z0-9+/=]+$/);
  });

  it('reaches every host as deploy with strict host-key checking', async () => {
    for (const h of info.hosts) {
      // is-system-running exits non-zero for "degraded" (accepted below), so only ssh's own failure counts.
      const r = await ssh(info, h.name, 'id -un; hostname; systemctl is-system-running || true');
      expect(r.exitCode, r.stderr).toBe(0);
      expect(r.stdout.split('\n').slice(0, 2)).toEqual(['deploy', h.name]);
      expect(['running', 'degraded']).toContain(r.stdout.split('\n')[2]);
    }
  });

  it('gives deploy passwordless sudo', async () => {
    const r = await ssh(info, 'h1', 'sudo -n true && sudo -n id -u');
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout).toBe('0');
  });

  it('gives every host its own machine-id and host key', async () => {
    const ids = await Promise.all(info.hosts.map((h) => ssh(info, h.name, 'cat /etc/machine-id')));
    expect(new Set(ids.map((r) => r.stdout)).size).toBe(info.hosts.length);
    const keys = readFileSync(info.knownHostsPath, 'utf8').trim().split('\n').map((l) => l.split(' ')[2]);
    expect(new Set(keys).size).toBe(info.hosts.length);
  });

  it('lets hosts reach each other, and nothing outside the lab', async () => {
    const [h1, h2] = info.hosts;
    const banner = (addr: string) => `timeout 5 bash -c 'exec 3<>/dev/tcp/${addr}/22; head -c 7 <&3'`;
    expect((await ssh(info, 'h1', banner(h2!.address))).stdout).toBe('SSH-2.0');
    expect((await ssh(info, 'h2', banner(h1!.address))).stdout).toBe('SSH-2.0');
    // No default route: nothing can leave the lab except through the proxy.
    const routes = await ssh(info, 'h1', 'ip -4 route show default; ip -6 route show default');
    expect(routes.exitCode).toBe(0);
    expect(routes.stdout).toBe('');
  });

  it('installs Debian packages through the lab proxy', async () => {
    const update = await ssh(info, 'h1', 'sudo -n apt-get update -q', { timeoutMs: 300_000 });
    expect(update.exitCode, update.stderr).toBe(0);
    expect(update.stdout).toMatch(/deb\.debian\.org/);
    const install = await ssh(info, 'h1', 'sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -q hello && hello', {
      timeoutMs: 300_000,
    });
    expect(install.exitCode, install.stderr).toBe(0);
    expect(install.stdout).toMatch(/Hello, world!/);
  });

  it('refuses a host key that is not in known_hosts', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'rtctl-lab-e2e-'));
    try {
      const empty = path.join(dir, 'empty_known_hosts');
      await writeFile(empty, '');
      const args = sshArgs(info, 'h1').map((a) => (a.startsWith('UserKnownHostsFile=') ? `UserKnownHostsFile=${empty}` : a));
      const unknown = await execa('ssh', [...args, 'true'], { reject: false, stdin: 'ignore' });
      expect(unknown.exitCode).toBe(255);
      expect(unknown.stderr).toMatch(/Host key verification failed/);

      // h2's key recorded for h1's address: a changed host key must be refused as well.
      const h2Key = readFileSync(info.knownHostsPath, 'utf8').split('\n')[1]!.split(' ').slice(1).join(' ');
      const wrong = path.join(dir, 'wrong_known_hosts');
      await writeFile(wrong, `${info.hosts[0]!.address} ${h2Key}\n`);
      const swapped = sshArgs(info, 'h1').map((a) => (a.startsWith('UserKnownHostsFile=') ? `UserKnownHostsFile=${wrong}` : a));
      const changed = await execa('ssh', [...swapped, 'true'], { reject: false, stdin: 'ignore' });
      expect(changed.exitCode).toBe(255);
      expect(changed.stderr).toMatch(/HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('cuts and heals a host link', async () => {
    const h2 = info.hosts[1]!;
    await setLink(NAME, 'h2', false);
    const cut = await ssh(info, 'h1', `timeout 3 bash -c '</dev/tcp/${h2.address}/22'`);
    expect(cut.exitCode).not.toBe(0);
    expect((await labStatus({ name: NAME })).hosts[1]!.state).toBe('unreachable');
    await setLink(NAME, 'h2', true);
    const healed = await ssh(info, 'h1', `timeout 10 bash -c 'until </dev/tcp/${h2.address}/22; do sleep 0.2; done'`);
    expect(healed.exitCode).toBe(0);
  });

  it('stops a host (power cut) and boots it again with the same identity', async () => {
    const before = await ssh(info, 'h2', 'cat /etc/machine-id; echo kept | sudo -n tee /var/tmp/marker >/dev/null');
    expect(before.exitCode, before.stderr).toBe(0);
    await stopHost(NAME, 'h2');
    expect((await labStatus({ name: NAME })).hosts.map((h) => h.state)).toEqual(['running', 'stopped']);
    expect((await ssh(info, 'h2', 'true', { timeoutMs: 20_000 })).exitCode).toBe(255);

    await startHost(NAME, 'h2');
    // Same overlay: the strict known_hosts still matches, and the host's data survived.
    const after = await ssh(info, 'h2', 'cat /etc/machine-id; cat /var/tmp/marker');
    expect(after.exitCode, after.stderr).toBe(0);
    expect(after.stdout).toBe(`${before.stdout}\nkept`);
    expect((await labStatus({ name: NAME })).hosts.map((h) => h.state)).toEqual(['running', 'running']);
  });

  it('removes everything on labDown', async () => {
    await labDown({ name: NAME });
    expect(await leftovers(info)).toEqual([]);
    expect(labInfo(NAME)).toBeNull();
    expect((await labStatus({ name: NAME })).info).toBeNull();
    // Idempotent: a second down (afterAll does one) finds nothing to do and does not fail.
    await labDown({ name: NAME });
  });
});
