/**
 * The Debian bookworm root filesystem every lab host boots from (read-only, as the lower layer of its overlay).
 * Built once per machine with debootstrap and cached; built in a temp dir and renamed into place, so the cache
 * dir either holds a complete rootfs or none. A lock file serialises concurrent builds (two `lab up` at once).
 */
import { constants } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, stat, unlink, writeFile, chmod, chown, rm, symlink } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LabError } from './errors.js';
import { cacheDir, rootfsDir } from './paths.js';
import { findProcesses, isAlive, run, terminate } from './proc.js';
import { removeTree } from './mounts.js';

const SUITE = 'bookworm';
const INCLUDE = 'systemd,systemd-sysv,openssh-server,iproute2,dbus,sudo,curl,ca-certificates';
const MIRROR = process.env.RTCTL_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';
const LOCK_WAIT_MS = 20 * 60_000;
export const DEPLOY_USER = 'deploy';

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/** Returns the cached rootfs, building it first if needed. */
export async function ensureRootfs(log: (l: string) => void): Promise<string> {
  const final = rootfsDir();
  if (await exists(final)) return checked(final);
  await mkdir(cacheDir(), { recursive: true });
  const release = await acquireLock(`${final}.lock`, log);
  try {
    // Someone else may have finished the build while we waited for the lock.
    if (await exists(final)) return checked(final);
    await removeStaleBuilds(final);
    const tmp = `${final}.tmp-${process.pid}`;
    const started = Date.now();
    log(`building the Debian ${SUITE} rootfs with debootstrap (once per machine, ~1 min) into ${final}`);
    try {
      await run('debootstrap', ['--variant=minbase', `--include=${INCLUDE}`, SUITE, tmp, MIRROR], { timeoutMs: 30 * 60_000 });
      await customise(tmp);
    } catch (err) {
      await removeTree(tmp);
      throw err;
    }
    await rename(tmp, final);
    log(`rootfs ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    return final;
  } finally {
    await release();
  }
}

/** Renaming makes a partial cache impossible for us, but the directory may have been tampered with. */
async function checked(root: string): Promise<string> {
  for (const f of ['usr/lib/os-release', 'usr/sbin/sshd', `etc/sudoers.d/rtctl-deploy`]) {
    if (!(await exists(path.join(root, f)))) {
      throw new LabError(`the cached rootfs ${root} is incomplete (no /${f}): delete it and run rtctl lab up again to rebuild it`);
    }
  }
  return root;
}

/**
 * O_EXCL lock file holding the builder's pid. A lock whose pid is dead is stale (a killed build) and is taken over.
 */
async function acquireLock(lockPath: string, log: (l: string) => void): Promise<() => Promise<void>> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  let announced = false;
  for (;;) {
    try {
      const fh = await open(lockPath, constants.O_CREAT | constants.O_EXCL | constants.O_WRONLY, 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return async () => {
        await unlink(lockPath).catch(() => undefined);
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(holder) || holder <= 1 || !isAlive(holder)) {
      await unlink(lockPath).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) {
      throw new LabError(`timed out waiting for the rootfs build of pid ${holder} (lock ${lockPath})`);
    }
    if (!announced) log(`waiting for another rtctl (pid ${holder}) to finish building the rootfs`);
    announced = true;
    await sleep(1000);
  }
}

/**
 * Temp dirs of builds whose rtctl was killed half-way. Its debootstrap may still be running (it survives its
 * parent) and may have left proc/sys mounted in the dir: stop it, unmount, remove.
 */
async function removeStaleBuilds(final: string): Promise<void> {
  const dir = path.dirname(final);
  const prefix = `${path.basename(final)}.tmp-`;
  for (const entry of await readdir(dir)) {
    if (!entry.startsWith(prefix)) continue;
    const stale = path.join(dir, entry);
    for (const pid of findProcesses(null, stale)) await terminate(pid, null, stale, 5_000);
    await removeTree(stale);
  }
}

/** What all hosts share. Per-host and per-lab files (hostname, keys, machine-id, apt proxy) go in the overlays. */
async function customise(root: string): Promise<void> {
  await run('chroot', [root, 'useradd', '--create-home', '--shell', '/bin/bash', DEPLOY_USER]);
  const sudoers = path.join(root, 'etc/sudoers.d/rtctl-deploy');
  await writeFile(sudoers, `${DEPLOY_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n`);
  await chmod(sudoers, 0o440);
  const { uid, gid } = await userIds(root, DEPLOY_USER);
  const sshDir = path.join(root, 'home', DEPLOY_USER, '.ssh');
  await mkdir(sshDir, { mode: 0o700 });
  await chown(sshDir, uid, gid);
  await mkdir(path.join(root, 'root/.ssh'), { mode: 0o700, recursive: true });
  // Each host gets its own machine-id and ssh host key in its overlay; none may be shared.
  await rm(path.join(root, 'etc/machine-id'), { force: true });
  // dbus's postinst wrote its own copy of the build's machine-id; point it at each host's instead.
  await rm(path.join(root, 'var/lib/dbus/machine-id'), { force: true });
  await symlink('/etc/machine-id', path.join(root, 'var/lib/dbus/machine-id'));
  for (const f of await readdir(path.join(root, 'etc/ssh'))) {
    if (f.startsWith('ssh_host_')) await rm(path.join(root, 'etc/ssh', f));
  }
  // Only the ed25519 key exists, so sshd should not look for the others.
  await writeFile(
    path.join(root, 'etc/ssh/sshd_config.d/rtctl-lab.conf'),
    'HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\n',
  );
  await run('chroot', [root, 'apt-get', 'clean']);
}

export async function userIds(root: string, user: string): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile(path.join(root, 'etc/passwd'), 'utf8');
  for (const line of passwd.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === user && uid !== undefined && gid !== undefined) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new LabError(`user ${user} missing from ${root}/etc/passwd`);
}
