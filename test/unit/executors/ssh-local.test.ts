/** SshExecutor against a real OpenSSH sshd on loopback. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SshExecutor } from '../../../src/executors/ssh.js';
import type { ConnectionSpec } from '../../../src/executors/types.js';
import { startSshd, type Sshd } from '../../helpers/sshd.js';

let d: Sshd;
beforeAll(async () => {
  d = await startSshd();
});
afterAll(async () => d?.stop());

const spec = (over: Partial<ConnectionSpec> = {}): ConnectionSpec => ({
  name: 'lo', address: '127.0.0.1', port: d.port, user: 'root', become: false, keyFile: d.clientKey,
  knownHostsFile: d.knownHosts, connectTimeoutMs: 3000, commandTimeoutMs: 10000, ...over,
});

describe('SshExecutor', () => {
  it('runs commands over one reused connection, with stdin, exit codes and stderr', async () => {
    const ex = new SshExecutor(spec());
    try {
      const ports = new Set<string>();
      const results = await Promise.all(Array.from({ length: 12 }, () => ex.run(['sh', '-c', 'echo $SSH_CONNECTION'])));
      for (const r of results) ports.add(r.stdout.split(' ')[1]!);
      expect(ports.size).toBe(1); // one TCP connection (same client port) for 12 concurrent commands
      expect(await ex.run(['cat'], { stdin: 'a b\n' })).toEqual({ code: 0, stdout: 'a b\n', stderr: '' });
      expect(await ex.run(['sh', '-c', 'echo oops >&2; exit 3'])).toEqual({ code: 3, stdout: '', stderr: 'oops\n' });
      expect((await ex.runScript('x=$((6*7)); echo "$x"')).stdout).toBe('42\n');
      expect((await ex.run(['printf', '%s', "it's a \"quoted\" $arg"])).stdout).toBe("it's a \"quoted\" $arg");
    } finally {
      await ex.close();
    }
  });

  it('times a command out, naming the host and command', async () => {
    const ex = new SshExecutor(spec());
    await expect(ex.run(['sleep', '5'], { timeoutMs: 500 })).rejects.toThrow('lo (127.0.0.1:' + d.port + '): command timed out after 1 s: sleep 5');
    await ex.close();
  });

  it('uploads over SFTP with the mode, and reads back', async () => {
    const ex = new SshExecutor(spec());
    const src = join(d.dir, 'payload');
    writeFileSync(src, 'payload\n');
    await ex.putFile(src, join(d.dir, 'uploaded'), 0o640);
    expect((statSync(join(d.dir, 'uploaded')).mode & 0o777).toString(8)).toBe('640');
    expect((await ex.getFile(join(d.dir, 'uploaded'))).toString()).toBe('payload\n');
    await ex.close();
  });

  it('refuses an unknown host key unless told to accept it, then accepts it strictly', async () => {
    const kh = join(d.dir, 'kh-empty');
    writeFileSync(kh, '');
    await expect(new SshExecutor(spec({ knownHostsFile: kh })).connect()).rejects.toThrow(/^lo \(127\.0\.0\.1:\d+\): unknown host key SHA256:\S+ — verify it and add it to .*kh-empty, or run with --accept-new-host-keys$/);
    const ex = new SshExecutor(spec({ knownHostsFile: kh }), { acceptNewHostKeys: true });
    await ex.connect();
    await ex.close();
    expect(readFileSync(kh, 'utf8')).toBe(`[127.0.0.1]:${d.port} ${d.hostKey}\n`);
    const again = new SshExecutor(spec({ knownHostsFile: kh }));
    expect((await again.run(['true'])).code).toBe(0);
    await again.close();
  });

  it('always refuses a changed host key', async () => {
    const kh = join(d.dir, 'kh-changed');
    const other = readFileSync(`${d.clientKey}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    writeFileSync(kh, `[127.0.0.1]:${d.port} ${other}\n`);
    await expect(new SshExecutor(spec({ knownHostsFile: kh }), { acceptNewHostKeys: true }).connect()).rejects.toThrow(/host key has CHANGED: expected SHA256:\S+, got SHA256:\S+ — possible man-in-the-middle/);
  });

  it('gives one clear line for a closed port and for a bad key', async () => {
    await expect(new SshExecutor(spec({ port: 1 })).connect()).rejects.toThrow(/^lo \(127\.0\.0\.1:1\): connection refused$/);
    const wrong = join(d.dir, 'host_ed25519'); // a valid key that is not authorized
    await expect(new SshExecutor(spec({ keyFile: wrong })).connect()).rejects.toThrow(`authentication failed for user root (key ${wrong})`);
  });

  it('reaches a host through a jump host', async () => {
    const ex = new SshExecutor(spec({ jump: { address: '127.0.0.1', port: d.port, user: 'root', keyFile: d.clientKey, connectTimeoutMs: 3000, commandTimeoutMs: 10000 } }));
    const r = await ex.run(['sh', '-c', 'echo $SSH_CONNECTION']);
    expect(r.stdout.split(' ')[0]).toBe('127.0.0.1');
    await ex.close();
  });
});
