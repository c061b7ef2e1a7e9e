/**
 * The SSH executor (ssh2): ONE connection per host for the whole run, reused for every command (one channel
 * each, at most MAX_CHANNELS at once, the rest queued) and for SFTP (one subsystem channel, opened lazily).
 * Strict host-key checking against an OpenSSH known_hosts file; optional jump host (one connection per jump
 * host, shared by the hosts behind it); connect and command timeouts. Every failure is a `ConnectError` whose
 * message is one line naming the host and the cause. Neither stdin nor file content is ever logged or put in
 * an error.
 */
import { readFileSync } from 'node:fs';
import ssh2, { type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';

// ssh2 is CommonJS: Node's ESM loader can't see `utils` as a named export, so take both from the default.
const { Client, utils } = ssh2;
type Client = InstanceType<typeof Client>;
import { shArgv } from '../util/shell.js';
import { ConnectError, ExecTimeoutError, HostKeyChangedError, HostKeyRevokedError, HostKeyUnknownError } from './errors-ssh.js';
import { appendKnownHost, checkHostKey, fingerprint, keyTypeOf, preferredHostKeyAlgorithms, readKnownHosts } from './known-hosts.js';
import type { ConnectionSpec, ExecOptions, ExecResult, Executor } from './types.js';

export { ExecTimeoutError, HostKeyChangedError, HostKeyRevokedError, HostKeyUnknownError } from './errors-ssh.js';

/** OpenSSH's default MaxSessions is 10: commands use at most 8 channels at once, SFTP one more. */
export const MAX_CHANNELS = 8;

export interface SshOptions {
  /** Record unknown host keys in known_hosts instead of refusing them (changed keys are refused always). */
  acceptNewHostKeys?: boolean;
  /** Progress lines such as `h1: connected (12 ms)`; never command input or file content. */
  log?: (line: string) => void;
}

/** One SSH endpoint: the target or its jump host. */
interface Endpoint {
  /** How messages name it: `h1 (198.18.1.11:22)`, `jump host bastion (198.18.0.5:22)`. */
  where: string;
  address: string;
  port: number;
  user: string;
  keyFile?: string;
}

interface DialContext {
  knownHostsFile: string;
  acceptNewHostKeys: boolean;
  connectTimeoutMs: number;
  log?: (line: string) => void;
  /** Name used in log lines. */
  logName: string;
}

type SshError = Error & { level?: string; code?: string };

/** `500 ms`, `10 s`, `2.5 s`. */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Number((ms / 1000).toFixed(1))} s`;
}

function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e?.code ?? e?.message ?? String(err);
}

/** Authentication settings for an endpoint, or the reason there are none. */
function authConfig(e: Endpoint): Pick<ConnectConfig, 'privateKey' | 'agent'> {
  const agent = process.env.SSH_AUTH_SOCK;
  if (e.keyFile) {
    let key: Buffer;
    try {
      key = readFileSync(e.keyFile);
    } catch (err) {
      throw new ConnectError(`${e.where}: cannot read key ${e.keyFile}: ${errText(err)}`);
    }
    const parsed = utils.parseKey(key);
    if (parsed instanceof Error) {
      // A passphrase-protected key is normally loaded in the agent: use it there.
      if (/encrypted|passphrase/i.test(parsed.message) && agent) return { agent };
      const why = /encrypted|passphrase/i.test(parsed.message) ? 'it is passphrase-protected and no ssh-agent is running ($SSH_AUTH_SOCK is unset); load it with ssh-add' : parsed.message;
      throw new ConnectError(`${e.where}: cannot use key ${e.keyFile}: ${why}`);
    }
    return { privateKey: key };
  }
  if (agent) return { agent };
  throw new ConnectError(`${e.where}: no way to authenticate as ${e.user}: no key file is set for this host and no ssh-agent is running ($SSH_AUTH_SOCK is unset)`);
}

/** Check the offered key; undefined = accept (possibly after recording it), otherwise the error to surface. */
function verifyHostKey(e: Endpoint, key: Buffer, ctx: DialContext): ConnectError | undefined {
  const file = ctx.knownHostsFile;
  let verdict;
  try {
    verdict = checkHostKey(readKnownHosts(file), e.address, e.port, key);
  } catch (err) {
    return new ConnectError(`${e.where}: cannot read known_hosts file ${file}: ${errText(err)}`);
  }
  if (verdict.ok) return undefined;
  const fp = fingerprint(key);
  switch (verdict.reason) {
    case 'changed':
      return new HostKeyChangedError(
        `host key for ${e.where} has CHANGED: expected ${verdict.expected}, got ${fp} — possible man-in-the-middle; if the change is intended, remove the old entry (line ${verdict.line}) from ${file}`,
      );
    case 'revoked':
      return new HostKeyRevokedError(`host key for ${e.where} (${fp}) is marked @revoked in ${file} (line ${verdict.line}) — refusing to connect`);
    case 'unknown':
      if (!ctx.acceptNewHostKeys) {
        return new HostKeyUnknownError(`unknown host key for ${e.where}: ${keyTypeOf(key)} ${fp} — verify it and add it to ${file}, or run with --accept-new-host-keys`);
      }
      try {
        appendKnownHost(file, e.address, e.port, key);
      } catch (err) {
        return new ConnectError(`${e.where}: cannot record the host key in ${file}: ${errText(err)}`);
      }
      ctx.log?.(`${ctx.logName}: added host key ${keyTypeOf(key)} ${fp} to ${file}`);
      return undefined;
  }
}

/** One line for a failed connection attempt. */
function explain(e: Endpoint, err: SshError, ctx: DialContext, tcpConnected: boolean): ConnectError {
  const w = e.where;
  const within = formatDuration(ctx.connectTimeoutMs);
  switch (err.code) {
    case 'ECONNREFUSED': return new ConnectError(`${w}: connection refused`);
    case 'EHOSTUNREACH': return new ConnectError(`${w}: no answer (host unreachable)`);
    case 'ENETUNREACH': return new ConnectError(`${w}: no answer (network unreachable)`);
    case 'ETIMEDOUT': return new ConnectError(`${w}: no answer within ${within}`);
    case 'ENOTFOUND': case 'EAI_AGAIN': return new ConnectError(`${w}: cannot resolve ${e.address}`);
    case 'ECONNRESET': return new ConnectError(`${w}: connection reset by the server during the handshake`);
  }
  if (err.level === 'client-authentication') {
    return new ConnectError(`${w}: authentication failed for user ${e.user} (${e.keyFile ? `key ${e.keyFile}` : 'ssh-agent'})`);
  }
  if (err.level === 'agent') return new ConnectError(`${w}: ssh-agent at ${process.env.SSH_AUTH_SOCK ?? '?'}: ${err.message}`);
  if (err.level === 'client-timeout' || /Timed out while waiting for handshake/.test(err.message)) {
    return new ConnectError(tcpConnected ? `${w}: no SSH handshake within ${within} (the port answers)` : `${w}: no answer within ${within}`);
  }
  return new ConnectError(`${w}: ${err.message}`);
}

/**
 * Open one ssh2 connection (directly, or over `sock`, a forwarded channel) with strict host-key checking;
 * resolves once authenticated.
 */
function dial(e: Endpoint, ctx: DialContext, sock?: NodeJS.ReadableStream): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    let hostKeyError: ConnectError | undefined;
    let settled = false;
    let tcpConnected = Boolean(sock);
    const fail = (err: ConnectError) => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      c.destroy();
      reject(err);
    };
    // TCP-level guard, should ssh2's readyTimeout not fire (e.g. a connect() that never returns).
    const guard = setTimeout(() => fail(new ConnectError(`${e.where}: no answer within ${formatDuration(ctx.connectTimeoutMs)}`)), ctx.connectTimeoutMs + 1000);
    let auth: Pick<ConnectConfig, 'privateKey' | 'agent'>;
    let algorithms: string[];
    try {
      auth = authConfig(e);
      algorithms = preferredHostKeyAlgorithms(readKnownHosts(ctx.knownHostsFile), e.address, e.port);
    } catch (err) {
      return fail(err instanceof ConnectError ? err : new ConnectError(`${e.where}: cannot read known_hosts file ${ctx.knownHostsFile}: ${errText(err)}`));
    }
    const config: ConnectConfig = {
      host: e.address,
      port: e.port,
      username: e.user,
      readyTimeout: ctx.connectTimeoutMs,
      keepaliveInterval: 15_000,
      keepaliveCountMax: 4,
      algorithms: { serverHostKey: algorithms as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] },
      hostVerifier: (key: Buffer) => {
        hostKeyError = verifyHostKey(e, key, ctx);
        return hostKeyError === undefined;
      },
      ...auth,
      ...(sock ? { sock: sock as NonNullable<ConnectConfig['sock']> } : {}),
    };
    c.on('connect', () => {
      tcpConnected = true;
    });
    c.on('ready', () => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      resolve(c);
    });
    c.on('error', (err: SshError) => {
      if (!settled) fail(hostKeyError ?? explain(e, err, ctx, tcpConnected));
    });
    c.on('close', () => {
      if (!settled) fail(hostKeyError ?? new ConnectError(`${e.where}: the server closed the connection during the handshake`));
    });
    try {
      c.connect(config);
    } catch (err) {
      fail(new ConnectError(`${e.where}: ${(err as Error).message}`));
    }
  });
}

/**
 * Ask sshd to signal the remote command's process group (OpenSSH >= 7.9 honours "signal" requests). ssh2's
 * `channel.signal()` stays silent once stdin is closed (we always close it), although the protocol allows the
 * request after EOF; so send it through ssh2's protocol object when the public method would not. Best effort:
 * closing the channel is what ends our wait; without the signal an orphaned command runs to its end.
 */
function signalChannel(ch: ClientChannel, name: string): void {
  const c = ch as unknown as {
    type?: string;
    outgoing?: { id?: number; state?: string };
    _client?: { _protocol?: { signal?: (id: number, name: string) => void } };
  };
  try {
    const proto = c._client?._protocol;
    const id = c.outgoing?.id;
    if (c.type === 'session' && typeof id === 'number' && (c.outgoing?.state === 'open' || c.outgoing?.state === 'eof') && typeof proto?.signal === 'function') {
      proto.signal(id, name);
    } else {
      ch.signal(name);
    }
  } catch {
    /* the channel or connection is already gone */
  }
}

/** Internal: the server refused to open one more channel (retried with fewer at once). */
class ChannelRefused extends Error {}

/** Jump-host connections, shared by every host behind the same jump host (bastions limit unauthenticated connections: MaxStartups). */
interface JumpEntry {
  client: Promise<Client>;
  refs: number;
}
const jumps = new Map<string, JumpEntry>();

async function leaseJump(e: Endpoint, ctx: DialContext): Promise<{ client: Client; release: () => void }> {
  const key = JSON.stringify([e.user, e.address, e.port, e.keyFile ?? '', ctx.knownHostsFile, ctx.acceptNewHostKeys]);
  let entry = jumps.get(key);
  if (!entry) {
    const created: JumpEntry = { refs: 0, client: dial(e, ctx) };
    entry = created;
    jumps.set(key, created);
    created.client.then(
      (c) => c.on('close', () => jumps.get(key) === created && jumps.delete(key)),
      () => jumps.get(key) === created && jumps.delete(key),
    );
  }
  entry.refs++;
  const held = entry;
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    if (--held.refs > 0) return;
    if (jumps.get(key) === held) jumps.delete(key);
    held.client.then((c) => c.end(), () => undefined);
  };
  try {
    return { client: await held.client, release };
  } catch (err) {
    release();
    throw err;
  }
}

export class SshExecutor implements Executor {
  readonly host: string;
  private readonly spec: ConnectionSpec;
  private readonly opts: SshOptions;
  private readonly where: string;
  /** The connection attempt (a rejected one is kept: no retry storm against a dead host until close()). */
  private connecting?: Promise<void>;
  private client?: Client;
  private releaseJump?: () => void;
  private sftp?: Promise<SFTPWrapper>;
  /** Set when the connection dropped (or was closed): every later call fails with it. */
  private lost?: ConnectError;
  /** Rejecters of in-flight commands, called when the connection drops. */
  private readonly pending = new Set<(err: ConnectError) => void>();
  private active = 0;
  /** Lowered when the server refuses channels below MAX_CHANNELS (a smaller MaxSessions). */
  private maxChannels = MAX_CHANNELS;
  /** Bumped by close(): a connection attempt that finishes after it is discarded. */
  private generation = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(spec: ConnectionSpec, opts: SshOptions = {}) {
    this.spec = spec;
    this.opts = opts;
    this.host = spec.name;
    this.where = `${spec.name} (${spec.address}:${spec.port})`;
  }

  connect(): Promise<void> {
    this.connecting ??= this.open();
    return this.connecting;
  }

  private ctx(): DialContext {
    return {
      knownHostsFile: this.spec.knownHostsFile,
      acceptNewHostKeys: this.opts.acceptNewHostKeys ?? false,
      connectTimeoutMs: this.spec.connectTimeoutMs,
      logName: this.host,
      ...(this.opts.log ? { log: this.opts.log } : {}),
    };
  }

  private async open(): Promise<void> {
    const t0 = Date.now();
    const generation = this.generation;
    this.lost = undefined;
    const target: Endpoint = {
      where: this.where, address: this.spec.address, port: this.spec.port, user: this.spec.user,
      ...(this.spec.keyFile ? { keyFile: this.spec.keyFile } : {}),
    };
    let sock: NodeJS.ReadableStream | undefined;
    let via = '';
    const j = this.spec.jump;
    if (j) {
      const jump: Endpoint = {
        where: `jump host ${j.name && j.name !== j.address ? `${j.name} ` : ''}(${j.address}:${j.port})`,
        address: j.address, port: j.port, user: j.user, ...(j.keyFile ? { keyFile: j.keyFile } : {}),
      };
      via = ` via ${jump.where}`;
      let lease;
      try {
        lease = await leaseJump(jump, { ...this.ctx(), connectTimeoutMs: j.connectTimeoutMs, logName: `${this.host}: ${jump.where}` });
      } catch (err) {
        // Name the host we were trying to reach, keeping the error's class (host-key errors stay host-key errors).
        const Cls = (err instanceof ConnectError ? err.constructor : ConnectError) as typeof ConnectError;
        throw new Cls(`${this.host}: ${(err as Error).message}`, { cause: err });
      }
      if (generation !== this.generation) {
        lease.release();
        throw new ConnectError(`${this.where}: connection closed`);
      }
      this.releaseJump = lease.release;
      try {
        sock = await new Promise<NodeJS.ReadableStream>((resolve, reject) => {
          const timer = setTimeout(() => reject(new ConnectError(`${this.where}: no answer within ${formatDuration(this.spec.connectTimeoutMs)} (through ${jump.where})`)), this.spec.connectTimeoutMs);
          try {
            lease.client.forwardOut('127.0.0.1', 0, this.spec.address, this.spec.port, (err, stream) => {
              clearTimeout(timer);
              if (err) reject(new ConnectError(`${this.where}: ${jump.where} cannot reach it: ${err.message}`));
              else resolve(stream);
            });
          } catch (err) {
            clearTimeout(timer);
            reject(new ConnectError(`${this.where}: ${jump.where}: connection lost (${(err as Error).message})`));
          }
        });
      } catch (err) {
        this.releaseJumpHost();
        throw err;
      }
    }
    let client: Client;
    try {
      client = await dial(target, this.ctx(), sock);
    } catch (err) {
      this.releaseJumpHost();
      throw err;
    }
    if (generation !== this.generation) {
      client.end();
      throw new ConnectError(`${this.where}: connection closed`);
    }
    this.client = client;
    let lastError: SshError | undefined;
    client.on('error', (err: SshError) => {
      lastError = err;
    });
    client.on('close', () => {
      if (this.client === client) this.onLost(lastError);
    });
    this.opts.log?.(`${this.host}: connected${via} (${Date.now() - t0} ms)`);
  }

  private releaseJumpHost(): void {
    this.releaseJump?.();
    this.releaseJump = undefined;
  }

  /** The connection dropped: fail every in-flight and later command. */
  private onLost(err?: SshError): void {
    const cause = err ? ` (${err.code ?? err.message})` : '';
    this.lost = new ConnectError(`${this.where}: connection lost${cause}`);
    this.client = undefined;
    this.sftp = undefined;
    this.releaseJumpHost();
    for (const reject of [...this.pending]) reject(this.lost);
    this.pending.clear();
  }

  private async slot(): Promise<() => void> {
    while (this.active >= this.maxChannels) await new Promise<void>((r) => this.waiters.push(r));
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.waiters.shift()?.();
    };
  }

  run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const become = opts.become !== false && this.spec.become;
    const command = shArgv(argv);
    return this.exec(become ? `sudo -n -- ${command}` : command, argv.join(' '), opts);
  }

  runScript(script: string, opts: Omit<ExecOptions, 'stdin'> = {}): Promise<ExecResult> {
    const become = opts.become !== false && this.spec.become;
    return this.exec(become ? 'sudo -n -- sh -s' : 'sh -s', 'sh -s (script on stdin)', { ...opts, stdin: script });
  }

  /** The live client, or the reason there is none. */
  private async ready(): Promise<Client> {
    await this.connect();
    if (this.lost) throw this.lost;
    if (!this.client) throw new ConnectError(`${this.where}: not connected`);
    return this.client;
  }

  /** `shown` names the command in errors: argv only, never stdin. */
  private async exec(command: string, shown: string, opts: ExecOptions): Promise<ExecResult> {
    for (;;) {
      await this.ready();
      const release = await this.slot();
      try {
        return await this.execOnce(command, shown, opts);
      } catch (err) {
        if (!(err instanceof ChannelRefused)) throw err;
        // The server allows fewer sessions per connection than we used: use fewer, then retry this command.
        this.maxChannels = Math.max(1, this.active - 1);
        this.opts.log?.(`${this.host}: the server refused a channel with ${this.active} open; now using at most ${this.maxChannels} at once`);
      } finally {
        release();
      }
    }
  }

  private async execOnce(command: string, shown: string, opts: ExecOptions): Promise<ExecResult> {
    const client = await this.ready(); // it may have dropped while we queued
    const timeoutMs = opts.timeoutMs ?? this.spec.commandTimeoutMs;
    return await new Promise<ExecResult>((resolve, reject) => {
      let done = false;
      let channel: ClientChannel | undefined;
      const finish = (err: Error | undefined, result?: ExecResult) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.pending.delete(onLost);
        if (err) reject(err);
        else resolve(result!);
      };
      const onLost = (err: ConnectError) => finish(err);
      this.pending.add(onLost);
      const timer = setTimeout(() => {
        finish(new ExecTimeoutError(`${this.where}: command timed out after ${formatDuration(timeoutMs)}: ${shown.slice(0, 80)}`));
        if (channel) {
          signalChannel(channel, 'TERM');
          channel.close();
        }
      }, timeoutMs);
      const onChannel = (err: Error | undefined, ch: ClientChannel) => {
        if (err) {
          if (!this.lost && this.active > 1 && /open failed|prohibited/i.test(err.message)) return finish(new ChannelRefused(err.message));
          return finish(this.lost ?? new ConnectError(`${this.where}: cannot open a channel: ${err.message}`));
        }
        if (done) return void ch.close();
        channel = ch;
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let exited = false;
        let code: number | null = null;
        ch.on('data', (d: Buffer) => out.push(d));
        ch.stderr.on('data', (d: Buffer) => errOut.push(d));
        ch.on('exit', (c: number | null) => {
          exited = true;
          code = typeof c === 'number' ? c : null;
        });
        ch.on('close', () => {
          if (exited) {
            finish(undefined, { code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8') });
          } else {
            // No exit status: the connection is going away (its 'close' may come right after this one).
            setImmediate(() => finish(this.lost ?? new ConnectError(`${this.where}: connection lost while running: ${shown.slice(0, 80)}`)));
          }
        });
        ch.on('error', () => undefined);
        if (opts.stdin !== undefined) ch.end(opts.stdin);
        else ch.end();
      };
      try {
        client.exec(command, onChannel);
      } catch (err) {
        finish(this.lost ?? new ConnectError(`${this.where}: cannot open a channel: ${(err as Error).message}`));
      }
    });
  }

  private getSftp(): Promise<SFTPWrapper> {
    this.sftp ??= this.ready().then(
      (client) =>
        new Promise<SFTPWrapper>((resolve, reject) =>
          client.sftp((err, s) => {
            if (err) return reject(this.lost ?? new ConnectError(`${this.where}: cannot start SFTP: ${err.message}`));
            s.on('error', () => undefined);
            s.on('close', () => {
              if (this.sftp === opened) this.sftp = undefined;
            });
            resolve(s);
          }),
        ),
    );
    const opened = this.sftp;
    opened.catch(() => {
      if (this.sftp === opened) this.sftp = undefined;
    });
    return opened;
  }

  /** One SFTP operation with the command timeout, failing with the connection if it drops. */
  private async sftpOp<T>(what: string, op: (sftp: SFTPWrapper, cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
    const sftp = await this.getSftp();
    const timeoutMs = this.spec.commandTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const finish = (err: Error | undefined, value?: T) => {
        clearTimeout(timer);
        this.pending.delete(onLost);
        if (err) reject(err);
        else resolve(value as T);
      };
      const onLost = (err: ConnectError) => finish(err);
      this.pending.add(onLost);
      const timer = setTimeout(() => finish(new ExecTimeoutError(`${this.where}: ${what} timed out after ${formatDuration(timeoutMs)}`)), timeoutMs);
      try {
        op(sftp, (err, value) => (err ? finish(this.lost ?? new ConnectError(`${this.where}: ${what} failed: ${err.message}`)) : finish(undefined, value)));
      } catch (err) {
        finish(this.lost ?? new ConnectError(`${this.where}: ${what} failed: ${(err as Error).message}`));
      }
    });
  }

  async putFile(localPath: string, remotePath: string, mode = 0o600): Promise<void> {
    await this.sftpOp<void>(`upload to ${remotePath}`, (s, cb) => s.fastPut(localPath, remotePath, { mode }, (err) => cb(err)));
    // fastPut's mode only applies to a new file, and through the umask: set it explicitly.
    await this.sftpOp<void>(`chmod ${mode.toString(8)} ${remotePath}`, (s, cb) => s.chmod(remotePath, mode, (err) => cb(err)));
  }

  async getFile(remotePath: string): Promise<Buffer> {
    return this.sftpOp<Buffer>(`download of ${remotePath}`, (s, cb) => s.readFile(remotePath, (err: Error | undefined, data: Buffer) => cb(err, data)));
  }

  async close(): Promise<void> {
    const client = this.client;
    const closed = new ConnectError(`${this.where}: connection closed`);
    this.generation++;
    this.client = undefined;
    this.connecting = undefined;
    this.sftp = undefined;
    for (const reject of [...this.pending]) reject(closed);
    this.pending.clear();
    if (client) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          client.destroy();
          resolve();
        }, 2000);
        client.once('close', () => {
          clearTimeout(t);
          resolve();
        });
        client.end();
      });
    }
    this.releaseJumpHost();
    this.lost = undefined;
  }
}

export function createExecutor(spec: ConnectionSpec, opts: SshOptions = {}): Executor {
  return new SshExecutor(spec, opts);
}
