/**
 * A real OpenSSH sshd on 127.0.0.1 (a free port, a fresh ed25519 host key, one authorized client key, all in a
 * temp dir) for the SSH executor's tests. We run as root (like CI), so the login user is root. Always call
 * `stop()` (in afterAll); a process-exit hook kills the daemon should a test run die first.
 */
import { execa, type ResultPromise } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Sshd {
  port: number;
  /** The temp dir holding keys, config and whatever a test writes. */
  dir: string;
  /** `ssh-ed25519 AAAA…` of the server (no comment). */
  hostKeyLine: string;
  /** Private key authorized for root. */
  clientKeyPath: string;
  /** A known_hosts file holding `[127.0.0.1]:<port> <hostKeyLine>`. */
  knownHostsFile: string;
  /** sshd's log so far (LogLevel VERBOSE). */
  log(): string;
  /** How many connections sshd accepted so far. */
  connections(): number;
  /** Kill every per-connection sshd process (the listener stays): clients see their connection drop. Commands they ran are left alone. */
  dropConnections(): void;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Pids of the sshd processes below `pid` (from /proc): only sshd's own, never a session's commands. */
function sshdDescendants(pid: number): number[] {
  return descendants(pid).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'sshd';
    } catch {
      return false;
    }
  });
}

/** Pids of every descendant of `pid` (from /proc). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)]);
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

function killPids(pids: number[]): void {
  for (const p of pids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

async function launch(dir: string, maxSessions: number): Promise<{ port: number; proc: ResultPromise; log: () => string }> {
  let lastLog = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    writeFileSync(
      join(dir, 'sshd_config'),
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${dir}/host_ed25519`,
        `AuthorizedKeysFile ${dir}/authorized_keys`,
        'UsePAM no',
        'StrictModes no',
        'PidFile none',
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'AllowTcpForwarding yes',
        'Subsystem sftp internal-sftp',
        `MaxSessions ${maxSessions}`,
        'MaxStartups 100',
        'UseDNS no',
        'PrintMotd no',
        'LogLevel VERBOSE',
        // Sessions get an empty HOME: root's real dotfiles (bash reads ~/.bashrc for ssh commands) stay out of
        // the tests — slow, and killing a session mid-rc could leave their locks behind.
        // rtctl keeps its host-side state (manifest, lock, audit log) under the temp dir, not this machine's.
        `SetEnv HOME=${dir}/home RTCTL_STATE_DIR=${dir}/rtctl-state RTCTL_AUDIT_LOG=${dir}/rtctl-state/audit.log`,
        '',
      ].join('\n'),
    );
    const proc = execa('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { reject: false, stdin: 'ignore', buffer: false });
    let log = '';
    proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    let exited = false;
    void proc.then(() => (exited = true));
    for (let i = 0; i < 300 && !exited && !log.includes('Server listening'); i++) await new Promise((r) => setTimeout(r, 50));
    if (log.includes('Server listening')) return { port, proc, log: () => log };
    proc.kill('SIGKILL');
    await proc;
    lastLog = log; // e.g. the port was taken between freePort() and bind: try another
  }
  throw new Error(`sshd did not start: ${lastLog}`);
}

export interface SshdOptions {
  /** sshd's MaxSessions (sessions per connection); OpenSSH's default is 10. */
  maxSessions?: number;
}

export async function startSshd(opts: SshdOptions = {}): Promise<Sshd> {
  const dir = mkdtempSync(join(tmpdir(), 'rtctl-sshd-'));
  try {
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 }); // sshd's privilege-separation directory
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'rtctl-test-host', '-f', join(dir, 'host_ed25519')]);
    await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'rtctl-test-client', '-f', join(dir, 'client')]);
    mkdirSync(join(dir, 'home'));
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client.pub')), { mode: 0o600 });
    const { port, proc, log } = await launch(dir, opts.maxSessions ?? 10);
    const pid = proc.pid!;
    const onExit = () => {
      killPids(sshdDescendants(pid));
      proc.kill('SIGKILL');
    };
    process.once('exit', onExit);
    const hostKeyLine = readFileSync(join(dir, 'host_ed25519.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    const knownHostsFile = join(dir, 'known_hosts');
    writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${hostKeyLine}\n`, { mode: 0o600 });
    return {
      port,
      dir,
      hostKeyLine,
      clientKeyPath: join(dir, 'client'),
      knownHostsFile,
      log,
      connections: () => log().split('\n').filter((l) => l.includes('Accepted publickey')).length,
      dropConnections: () => killPids(sshdDescendants(pid)),
      stop: async () => {
        process.removeListener('exit', onExit);
        const leftovers = sshdDescendants(pid); // per-connection processes left by a test that did not close
        proc.kill('SIGTERM');
        killPids(leftovers);
        await Promise.race([proc, new Promise((r) => setTimeout(r, 3000))]);
        if (proc.exitCode === null && existsSync(`/proc/${pid}`)) proc.kill('SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
