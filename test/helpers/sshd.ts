/**
 * A real OpenSSH sshd on 127.0.0.1 (a free port, a temp host key, one authorized client key) for the SSH
 * executor's tests. We run as root (like CI), so the login user is root.
 */
import { execa, type ResultPromise } from 'execa';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Sshd {
  port: number;
  dir: string;
  /** `ssh-ed25519 AAAA…` of the server. */
  hostKey: string;
  clientKey: string;
  knownHosts: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function startSshd(): Promise<Sshd> {
  const dir = mkdtempSync(join(tmpdir(), 'rtctl-sshd-'));
  mkdirSync('/run/sshd', { recursive: true });
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host_ed25519')]);
  await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'client')]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(join(dir, 'client.pub')));
  const port = await freePort();
  writeFileSync(join(dir, 'sshd_config'), [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${dir}/host_ed25519`, `AuthorizedKeysFile ${dir}/authorized_keys`,
    'UsePAM no', 'StrictModes no', 'PidFile none', 'PermitRootLogin prohibit-password', 'PasswordAuthentication no',
    'AllowTcpForwarding yes', 'Subsystem sftp internal-sftp', 'MaxSessions 10', 'LogLevel VERBOSE',
  ].join('\n'));
  const proc: ResultPromise = execa('/usr/sbin/sshd', ['-D', '-e', '-f', join(dir, 'sshd_config')], { reject: false, stdin: 'ignore' });
  let log = '';
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  for (let i = 0; i < 100 && !log.includes('Server listening'); i++) await new Promise((r) => setTimeout(r, 50));
  if (!log.includes('Server listening')) throw new Error(`sshd did not start: ${log}`);
  const hostKey = readFileSync(join(dir, 'host_ed25519.pub'), 'utf8').trim().split(' ').slice(0, 2).join(' ');
  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostKey}\n`);
  return {
    port, dir, hostKey, clientKey: join(dir, 'client'), knownHosts,
    stop: async () => {
      proc.kill('SIGTERM');
      // Per-connection children keep the pipes open for a moment; don't wait for them.
      await Promise.race([proc, new Promise((r) => setTimeout(r, 1000))]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
