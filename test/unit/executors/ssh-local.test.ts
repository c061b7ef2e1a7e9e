/** SshExecutor against a real OpenSSH sshd on 127.0.0.1 (test/helpers/sshd.ts); nothing is mocked. */
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectError, RtctlError } from '../../../src/errors.js';
import { ExecTimeoutError, HostKeyChangedError, HostKeyRevokedError, HostKeyUnknownError } from '../../../src/executors/errors-ssh.js';
import { createExecutor, SshExecutor } from '../../../src/executors/ssh.js';
import type { ConnectionSpec } from '../../../src/executors/types.js';
import { startSshd, type Sshd } from '../../helpers/sshd.js';

let d: Sshd;
beforeAll(async () => {
  d = await startSshd();
}, 60_000);
afterAll(async () => {
  await d?.stop();
}, 30_000);

// Generous connect timeout: CI machines are small and may be busy.
const spec = (over: Partial<ConnectionSpec> = {}): ConnectionSpec => ({
  name: 'lo', address: '127.0.0.1', port: d.port, user: 'root', become: false, keyFile: d.clientKeyPath,
  knownHostsFile: d.knownHostsFile, connectTimeoutMs: 20_000, commandTimeoutMs: 30_000, ...over,
});
const jumpSpec = (over: Partial<NonNullable<ConnectionSpec['jump']>> = {}): NonNullable<ConnectionSpec['jump']> => ({
  address: '127.0.0.1', port: d.port, user: 'root', keyFile: d.clientKeyPath, connectTimeoutMs: 20_000, commandTimeoutMs: 30_000, ...over,
});
const where = () => `lo (127.0.0.1:${d.port})`;
const re = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Run `fn` with an executor, closing it whatever happens. */
async function withExec<T>(ex: SshExecutor, fn: (ex: SshExecutor) => Promise<T>): Promise<T> {
  try {
    return await fn(ex);
  } finally {
    await ex.close();
  }
}

/** Settled error of a promise (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
}

async function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

describe('SshExecutor against a real sshd', { timeout: 90_000 }, () => {
  it('runs argv and scripts: stdout, stdin, exit codes, stderr, quoting', async () => {
    const lines: string[] = [];
    await withExec(new SshExecutor(spec(), { log: (l) => lines.push(l) }), async (ex) => {
      expect(await ex.run(['echo', 'hello'])).toEqual({ code: 0, stdout: 'hello\n', stderr: '' });
      expect(await ex.run(['cat'], { stdin: 'top secret\n' })).toEqual({ code: 0, stdout: 'top secret\n', stderr: '' });
      expect(await ex.run(['wc', '-c'], { stdin: Buffer.alloc(300_000, 0x61) })).toMatchObject({ code: 0, stdout: '300000\n' });
      expect(await ex.run(['sh', '-c', 'echo oops >&2; exit 3'])).toEqual({ code: 3, stdout: '', stderr: 'oops\n' });
      expect(await ex.run(['sh', '-c', 'kill -KILL $$'])).toMatchObject({ code: null });
      expect((await ex.runScript('x=$((6*7))\necho "$x"\nprintf "é✓\\n"')).stdout).toBe('42\né✓\n');
      expect((await ex.run(['printf', '%s|', "it's a \"quoted\" $arg", '', 'a b', '*', '`id`;rm'])).stdout).toBe("it's a \"quoted\" $arg||a b|*|`id`;rm|");
      // Nothing reads stdin: it is closed, so `cat` ends at once.
      expect(await ex.run(['cat'])).toEqual({ code: 0, stdout: '', stderr: '' });
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^lo: connected \(\d+ ms\)$/);
    expect(lines.join('\n')).not.toContain('top secret');
  });

  it('prefixes `sudo -n --` when the host has become (unless the command opts out)', async () => {
    // This machine has no sudo: "sudo: not found" (127) proves the prefix; become:false runs the command itself.
    await withExec(new SshExecutor(spec({ become: true })), async (ex) => {
      const viaSudo = await ex.run(['id', '-u']);
      const script = await ex.runScript('id -u');
      const sudoMissing = viaSudo.code === 127 && /sudo/.test(viaSudo.stderr);
      if (sudoMissing) expect(script.code).toBe(127);
      else expect([viaSudo.stdout, script.stdout]).toEqual(['0\n', '0\n']);
      expect(await ex.run(['id', '-u'], { become: false })).toEqual({ code: 0, stdout: '0\n', stderr: '' });
    });
  });

  it('reuses ONE connection for every command and for SFTP, capping concurrent channels below MaxSessions', async () => {
    const before = d.connections();
    await withExec(new SshExecutor(spec()), async (ex) => {
      const sequential: string[] = [];
      for (let i = 0; i < 10; i++) sequential.push((await ex.run(['sh', '-c', 'echo $SSH_CONNECTION'])).stdout);
      // 20 concurrent commands on a server with MaxSessions 10: more than 10 channels at once would be refused.
      const concurrent = await Promise.all(Array.from({ length: 20 }, () => ex.run(['sh', '-c', 'sleep 0.2; echo $SSH_CONNECTION'])));
      const ports = new Set([...sequential, ...concurrent.map((r) => r.stdout)].map((s) => s.split(' ')[1]));
      expect(concurrent.every((r) => r.code === 0)).toBe(true);
      expect(ports.size).toBe(1);
      await ex.getFile('/etc/hostname');
      await ex.getFile('/etc/hostname');
    });
    // sshd logs one "Accepted publickey" per connection.
    await expect.poll(() => d.connections() - before).toBe(1);
  });

  it('uses fewer channels at once when the server allows fewer sessions (MaxSessions 3)', async () => {
    const small = await startSshd({ maxSessions: 3 });
    const lines: string[] = [];
    try {
      const ex = new SshExecutor(spec({ port: small.port, keyFile: small.clientKeyPath, knownHostsFile: small.knownHostsFile }), { log: (l) => lines.push(l) });
      await withExec(ex, async () => {
        const results = await Promise.all(Array.from({ length: 12 }, (_, i) => ex.run(['sh', '-c', `sleep 0.2; echo ${i}`])));
        expect(results.map((r) => r.stdout)).toEqual(Array.from({ length: 12 }, (_, i) => `${i}\n`));
      });
      expect(lines.some((l) => /^lo: the server refused a channel with \d+ open; now using at most [1-3] at once$/.test(l))).toBe(true);
    } finally {
      await small.stop();
    }
  });

  it('times a command out: ExecTimeoutError naming host and command; the connection stays usable', async () => {
    await withExec(new SshExecutor(spec()), async (ex) => {
      await ex.connect();
      const t0 = Date.now();
      const err = await failure(ex.run(['sleep', '5'], { timeoutMs: 500, stdin: 'never-shown' }));
      expect(Date.now() - t0).toBeLessThan(4000);
      expect(err).toBeInstanceOf(ExecTimeoutError);
      expect(err).toBeInstanceOf(ConnectError);
      expect(err.message).toBe(`${where()}: command timed out after 500 ms: sleep 5`);
      expect(err.message).not.toContain('never-shown');
      const long = await failure(ex.run(['echo', 'x'.repeat(200)], { timeoutMs: 1 }));
      expect(long.message).toBe(`${where()}: command timed out after 1 ms: echo ${'x'.repeat(75)}`);
      // The spec's commandTimeoutMs applies when the call gives none.
      await withExec(new SshExecutor(spec({ commandTimeoutMs: 300 })), async (short) => {
        expect((await failure(short.runScript('sleep 5'))).message).toMatch(/command timed out after 300 ms: sh -s/);
      });
      expect((await ex.run(['echo', 'still here'])).stdout).toBe('still here\n');
    });
  });

  it('uploads over SFTP with the mode (checked with stat -c %a) and downloads bytes back', async () => {
    await withExec(new SshExecutor(spec()), async (ex) => {
      const src = join(d.dir, 'payload');
      const bytes = randomBytes(200_000);
      writeFileSync(src, bytes);
      const dst = join(d.dir, 'uploaded');
      await ex.putFile(src, dst, 0o640);
      expect((await ex.run(['stat', '-c', '%a', dst])).stdout).toBe('640\n');
      expect((await ex.getFile(dst)).equals(bytes)).toBe(true);
      await ex.putFile(src, dst); // existing file: the default mode 0600 still applies
      expect((await ex.run(['stat', '-c', '%a', dst])).stdout).toBe('600\n');
      expect(statSync(dst).mode & 0o777).toBe(0o600);
      const missing = await failure(ex.getFile(join(d.dir, 'nope')));
      expect(missing).toBeInstanceOf(ConnectError);
      expect(missing.message).toMatch(new RegExp(`^${re(where())}: download of .*nope failed: No such file`));
      const badDir = await failure(ex.putFile(src, '/nonexistent-dir/x', 0o600));
      expect(badDir.message).toMatch(new RegExp(`^${re(where())}: upload to /nonexistent-dir/x failed: `));
    });
  });

  it('refuses an unknown host key; --accept-new records it (0600 file) and the next connection is strict', async () => {
    const kh = join(d.dir, 'new-dir', 'known_hosts');
    const err = await failure(new SshExecutor(spec({ knownHostsFile: kh })).connect());
    expect(err).toBeInstanceOf(HostKeyUnknownError);
    expect(err.message).toMatch(new RegExp(`^unknown host key for ${re(where())}: ssh-ed25519 SHA256:[A-Za-z0-9+/]{43} — verify it and add it to ${re(kh)}, or run with --accept-new-host-keys$`));
    expect(existsSync(kh)).toBe(false);

    const lines: string[] = [];
    await withExec(new SshExecutor(spec({ knownHostsFile: kh }), { acceptNewHostKeys: true, log: (l) => lines.push(l) }), (ex) => ex.connect());
    expect(readFileSync(kh, 'utf8')).toBe(`[127.0.0.1]:${d.port} ${d.hostKeyLine}\n`);
    expect(statSync(kh).mode & 0o777).toBe(0o600);
    expect(lines[0]).toMatch(new RegExp(`^lo: added host key ssh-ed25519 SHA256:\\S+ to ${re(kh)}$`));

    await withExec(new SshExecutor(spec({ knownHostsFile: kh })), async (ex) => expect((await ex.run(['true'])).code).toBe(0));
    expect(readFileSync(kh, 'utf8').split('\n').filter(Boolean)).toHaveLength(1);
  });

  it('always refuses a changed host key, even with --accept-new-host-keys, and leaves known_hosts alone', async () => {
    const kh = join(d.dir, 'kh-changed');
    const other = readFileSync(`${d.clientKeyPath}.pub`, 'utf8').split(' ').slice(0, 2).join(' '); // another ed25519 key
    const content = `# ours\n[127.0.0.1]:${d.port} ${other}\n`;
    writeFileSync(kh, content);
    const err = await failure(new SshExecutor(spec({ knownHostsFile: kh }), { acceptNewHostKeys: true }).connect());
    expect(err).toBeInstanceOf(HostKeyChangedError);
    expect(err).toBeInstanceOf(RtctlError);
    expect(err.message).toMatch(
      new RegExp(`^host key for ${re(where())} has CHANGED: expected SHA256:\\S+, got SHA256:\\S+ — possible man-in-the-middle; if the change is intended, remove the old entry \\(line 2\\) from ${re(kh)}$`),
    );
    expect(readFileSync(kh, 'utf8')).toBe(content);
  });

  it('accepts a hashed known_hosts entry and refuses a @revoked key', async () => {
    const salt = randomBytes(20);
    const token = `[127.0.0.1]:${d.port}`;
    const hashed = join(d.dir, 'kh-hashed');
    writeFileSync(hashed, `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(token).digest('base64')} ${d.hostKeyLine}\n`);
    await withExec(new SshExecutor(spec({ knownHostsFile: hashed })), async (ex) => expect((await ex.run(['true'])).code).toBe(0));

    const revoked = join(d.dir, 'kh-revoked');
    writeFileSync(revoked, `@revoked * ${d.hostKeyLine}\n${token} ${d.hostKeyLine}\n`);
    const err = await failure(new SshExecutor(spec({ knownHostsFile: revoked }), { acceptNewHostKeys: true }).connect());
    expect(err).toBeInstanceOf(HostKeyRevokedError);
    expect(err.message).toMatch(/^host key for lo \(127\.0\.0\.1:\d+\) \(SHA256:\S+\) is marked @revoked in .*kh-revoked \(line 1\) — refusing to connect$/);
  });

  it('gives one clear line for a closed port, a bad key, a missing key file and no way to authenticate', async () => {
    const port = await closedPort();
    const refused = await failure(new SshExecutor(spec({ port })).connect());
    expect(refused).toBeInstanceOf(ConnectError);
    expect(refused.message).toBe(`lo (127.0.0.1:${port}): connection refused`);

    const wrong = join(d.dir, 'host_ed25519'); // a valid key that is not authorized
    expect((await failure(new SshExecutor(spec({ keyFile: wrong })).connect())).message).toBe(`${where()}: authentication failed for user root (key ${wrong})`);

    const missing = join(d.dir, 'no-such-key');
    expect((await failure(new SshExecutor(spec({ keyFile: missing })).connect())).message).toBe(`${where()}: cannot read key ${missing}: ENOENT`);

    const agent = process.env.SSH_AUTH_SOCK;
    delete process.env.SSH_AUTH_SOCK;
    try {
      const { keyFile: _, ...noKey } = spec();
      const none = await failure(new SshExecutor(noKey).connect());
      expect(none.message).toBe(`${where()}: no way to authenticate as root: no key file is set for this host and no ssh-agent is running ($SSH_AUTH_SOCK is unset)`);
    } finally {
      if (agent !== undefined) process.env.SSH_AUTH_SOCK = agent;
    }
  });

  it('gives a connect timeout when the port accepts but never speaks SSH', async () => {
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    try {
      const t0 = Date.now();
      const err = await failure(new SshExecutor(spec({ port, connectTimeoutMs: 700 })).connect());
      expect(err.message).toBe(`lo (127.0.0.1:${port}): no SSH handshake within 700 ms (the port answers)`);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      silent.close();
    }
  });

  it('fails in-flight and later commands with "connection lost" when the connection drops', async () => {
    await withExec(new SshExecutor(spec()), async (ex) => {
      await ex.connect();
      const pidFile = join(d.dir, 'sleeper.pid');
      const pending = failure(ex.run(['sh', '-c', `echo $$ > ${pidFile}; exec sleep 30`]));
      await expect.poll(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'), { timeout: 20_000 }).toBe(true);
      d.dropConnections();
      const err = await pending;
      expect(err).toBeInstanceOf(ConnectError);
      expect(err.message).toMatch(new RegExp(`^${re(where())}: connection lost`));
      expect((await failure(ex.run(['true']))).message).toMatch(/connection lost/);
      process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL'); // the orphaned command
    });
    // After close(), the executor connects afresh.
    const ex = new SshExecutor(spec());
    await withExec(ex, async () => expect((await ex.run(['true'])).code).toBe(0));
    await withExec(ex, async () => expect((await ex.run(['true'])).code).toBe(0));
  });

  it('reaches a host through a jump host (the same sshd), both host keys checked against known_hosts', async () => {
    const before = d.connections();
    const lines: string[] = [];
    const ex = createExecutor(spec({ jump: jumpSpec({ name: 'bastion' }) }), { log: (l) => lines.push(l) });
    await withExec(ex as SshExecutor, async () => {
      const r = await ex.run(['sh', '-c', 'echo $SSH_CONNECTION']);
      expect(r.stdout.split(' ')[0]).toBe('127.0.0.1');
      await ex.putFile(d.knownHostsFile, join(d.dir, 'via-jump'), 0o644);
      expect((await ex.run(['stat', '-c', '%a', join(d.dir, 'via-jump')])).stdout).toBe('644\n');
    });
    expect(lines).toEqual([expect.stringMatching(new RegExp(`^lo: connected via jump host bastion \\(127\\.0\\.0\\.1:${d.port}\\) \\(\\d+ ms\\)$`))]);
    await expect.poll(() => d.connections() - before).toBe(2); // jump + target

    // The jump host's key is checked too, and the error names the host we were after.
    const kh = join(d.dir, 'kh-jump-empty');
    writeFileSync(kh, '');
    const err = await failure(new SshExecutor(spec({ knownHostsFile: kh, jump: jumpSpec() })).connect());
    expect(err).toBeInstanceOf(HostKeyUnknownError);
    expect(err.message).toMatch(new RegExp(`^lo: unknown host key for jump host \\(127\\.0\\.0\\.1:${d.port}\\): ssh-ed25519 SHA256:\\S+ — verify it`));

    const port = await closedPort();
    const down = await failure(new SshExecutor(spec({ jump: jumpSpec({ port }) })).connect());
    expect(down.message).toBe(`lo: jump host (127.0.0.1:${port}): connection refused`);
  });

  it('shares one jump-host connection among the hosts behind it', async () => {
    const before = d.connections();
    const a = new SshExecutor(spec({ name: 'a', jump: jumpSpec() }));
    const b = new SshExecutor(spec({ name: 'b', jump: jumpSpec() }));
    try {
      await Promise.all([a.connect(), b.connect()]);
      const [ra, rb] = await Promise.all([a.run(['echo', 'a']), b.run(['echo', 'b'])]);
      expect([ra.stdout, rb.stdout]).toEqual(['a\n', 'b\n']);
    } finally {
      await a.close();
      await b.close();
    }
    await expect.poll(() => d.connections() - before).toBe(3); // one jump + two targets
  });
});
