/**
 * The SSH executor (ssh2): ONE connection per host for the whole run, reused for every command (one channel
 * each, a bounded number at once) and for SFTP. Strict host-key checking against known_hosts; optional jump
 * host; connect and command timeouts; every failure becomes one line naming the host and the cause.
 */
import { readFileSync } from 'node:fs';
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { ConnectError } from '../errors.js';
import { shArgv } from '../util/shell.js';
import { appendKnownHost, checkHostKey, fingerprint, hostToken, readKnownHosts } from './known-hosts.js';
import type { ConnectionSpec, ExecOptions, ExecResult, Executor } from './types.js';

export class HostKeyChangedError extends ConnectError {}
export class HostKeyUnknownError extends ConnectError {}
export class ExecTimeoutError extends ConnectError {}

/** OpenSSH's default MaxSessions is 10: stay below it. */
const MAX_CHANNELS = 8;

export interface SshOptions {
  acceptNewHostKeys?: boolean;
  log?: (line: string) => void;
}

type Endpoint = { name: string; address: string; port: number; user: string; keyFile?: string };

export class SshExecutor implements Executor {
  readonly host: string;
  private readonly spec: ConnectionSpec;
  private readonly opts: SshOptions;
  private clients: Client[] = [];
  private client?: Client;
  private connecting?: Promise<void>;
  private sftp?: Promise<SFTPWrapper>;
  private active = 0;
  private waiters: (() => void)[] = [];
  private lost?: Error;

  constructor(spec: ConnectionSpec, opts: SshOptions = {}) {
    this.spec = spec;
    this.opts = opts;
    this.host = spec.name;
  }

  private where(e: Endpoint = this.spec): string {
    return `${e.name} (${e.address}:${e.port})`;
  }

  connect(): Promise<void> {
    this.connecting ??= this.open().catch((err) => {
      this.connecting = undefined;
      throw err;
    });
    return this.connecting;
  }

  private async open(): Promise<void> {
    const t0 = Date.now();
    let sock: NodeJS.ReadableStream | undefined;
    if (this.spec.jump) {
      const j = this.spec.jump;
      const jump: Endpoint = { name: j.name ?? `jump ${j.address}`, address: j.address, port: j.port, user: j.user, ...(j.keyFile ? { keyFile: j.keyFile } : {}) };
      const jc = await this.dial(jump);
      sock = await new Promise((resolve, reject) => {
        jc.forwardOut('127.0.0.1', 0, this.spec.address, this.spec.port, (err, stream) =>
          err ? reject(new ConnectError(`${this.where()}: jump host ${this.where(jump)} cannot reach it: ${err.message}`)) : resolve(stream));
      });
    }
    this.client = await this.dial(this.spec, sock);
    this.opts.log?.(`${this.host}: connected (${Date.now() - t0} ms)`);
  }

  /** One ssh2 connection with host-key verification; resolves when ready. */
  private dial(e: Endpoint, sock?: NodeJS.ReadableStream): Promise<Client> {
    return new Promise((resolve, reject) => {
      const c = new Client();
      this.clients.push(c);
      let hostKeyError: ConnectError | undefined;
      let settled = false;
      const fail = (err: ConnectError) => {
        if (settled) return;
        settled = true;
        clearTimeout(guard);
        c.end();
        reject(err);
      };
      const guard = setTimeout(() => fail(new ConnectError(`${this.where(e)}: no answer within ${Math.round(this.spec.connectTimeoutMs / 1000)} s`)), this.spec.connectTimeoutMs + 1000);
      const config: ConnectConfig = {
        host: e.address,
        port: e.port,
        username: e.user,
        readyTimeout: this.spec.connectTimeoutMs,
        keepaliveInterval: 5000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          const v = this.verify(e, key);
          if (v) hostKeyError = v;
          return !v;
        },
        ...(sock ? { sock: sock as never } : {}),
      };
      try {
        if (e.keyFile) config.privateKey = readFileSync(e.keyFile);
        else if (process.env.SSH_AUTH_SOCK) config.agent = process.env.SSH_AUTH_SOCK;
        else return fail(new ConnectError(`${this.where(e)}: no key file given and no ssh-agent ($SSH_AUTH_SOCK unset)`));
      } catch (err) {
        return fail(new ConnectError(`${this.where(e)}: cannot read key ${e.keyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`));
      }
      c.on('ready', () => {
        if (settled) return;
        settled = true;
        clearTimeout(guard);
        resolve(c);
      });
      c.on('error', (err: Error & { level?: string; code?: string }) => {
        if (!settled) return fail(hostKeyError ?? this.explain(e, err));
        this.lost = new ConnectError(`${this.where(e)}: connection lost (${err.message})`);
      });
      c.on('close', () => {
        if (!settled) return fail(hostKeyError ?? new ConnectError(`${this.where(e)}: connection closed during handshake`));
        this.lost ??= new ConnectError(`${this.where(e)}: connection lost`);
      });
      c.connect(config);
    });
  }

  /** undefined = accept; otherwise the reason to refuse. */
  private verify(e: Endpoint, key: Buffer): ConnectError | undefined {
    const file = this.spec.knownHostsFile;
    const v = checkHostKey(readKnownHosts(file), e.address, e.port, key);
    if (v.ok) return undefined;
    const fp = fingerprint(key);
    if (v.reason === 'changed') {
      return new HostKeyChangedError(`${this.where(e)}: host key has CHANGED: expected ${v.expected}, got ${fp} — possible man-in-the-middle; if the change is intended, remove the old entry for ${hostToken(e.address, e.port)} from ${file}`);
    }
    if (v.reason === 'revoked') return new HostKeyChangedError(`${this.where(e)}: host key ${fp} is marked @revoked in ${file}`);
    if (this.opts.acceptNewHostKeys) {
      appendKnownHost(file, e.address, e.port, key);
      this.opts.log?.(`${e.name}: added host key ${fp} to ${file}`);
      return undefined;
    }
    return new HostKeyUnknownError(`${this.where(e)}: unknown host key ${fp} — verify it and add it to ${file}, or run with --accept-new-host-keys`);
  }

  private explain(e: Endpoint, err: Error & { level?: string; code?: string }): ConnectError {
    const w = this.where(e);
    switch (err.code) {
      case 'ECONNREFUSED': return new ConnectError(`${w}: connection refused`);
      case 'EHOSTUNREACH': case 'ENETUNREACH': return new ConnectError(`${w}: host unreachable`);
      case 'ETIMEDOUT': return new ConnectError(`${w}: no answer within ${Math.round(this.spec.connectTimeoutMs / 1000)} s`);
      case 'ENOTFOUND': case 'EAI_AGAIN': return new ConnectError(`${w}: cannot resolve ${e.address}`);
      case 'ECONNRESET': return new ConnectError(`${w}: connection reset`);
    }
    if (err.level === 'client-authentication') return new ConnectError(`${w}: authentication failed for user ${e.user} (${e.keyFile ? `key ${e.keyFile}` : 'ssh-agent'})`);
    if (/Timed out while waiting for handshake/.test(err.message)) return new ConnectError(`${w}: no answer within ${Math.round(this.spec.connectTimeoutMs / 1000)} s`);
    return new ConnectError(`${w}: ${err.message}`);
  }

  private async slot(): Promise<() => void> {
    if (this.active >= MAX_CHANNELS) await new Promise<void>((r) => this.waiters.push(r));
    this.active++;
    return () => {
      this.active--;
      this.waiters.shift()?.();
    };
  }

  run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const become = opts.become !== false && this.spec.become;
    return this.exec(become ? `sudo -n -- ${shArgv(argv)}` : shArgv(argv), argv.join(' '), opts);
  }

  runScript(script: string, opts: Omit<ExecOptions, 'stdin'> = {}): Promise<ExecResult> {
    const become = opts.become !== false && this.spec.become;
    return this.exec(become ? 'sudo -n -- sh -s' : 'sh -s', 'sh -s', { ...opts, stdin: script });
  }

  private async exec(command: string, shown: string, opts: ExecOptions): Promise<ExecResult> {
    await this.connect();
    if (this.lost) throw this.lost;
    const release = await this.slot();
    const timeoutMs = opts.timeoutMs ?? this.spec.commandTimeoutMs;
    try {
      return await new Promise<ExecResult>((resolve, reject) => {
        this.client!.exec(command, (err, ch: ClientChannel) => {
          if (err) return reject(this.lost ?? new ConnectError(`${this.where()}: cannot start command: ${err.message}`));
          const out: Buffer[] = [];
          const errb: Buffer[] = [];
          let code: number | null = null;
          const timer = setTimeout(() => {
            ch.close();
            reject(new ExecTimeoutError(`${this.where()}: command timed out after ${Math.round(timeoutMs / 1000)} s: ${shown.slice(0, 80)}`));
          }, timeoutMs);
          ch.on('data', (d: Buffer) => out.push(d));
          ch.stderr.on('data', (d: Buffer) => errb.push(d));
          ch.on('exit', (c: number | null) => {
            code = c;
          });
          ch.on('close', () => {
            clearTimeout(timer);
            if (this.lost && code === null) return reject(this.lost);
            resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errb).toString('utf8') });
          });
          if (opts.stdin !== undefined) ch.end(opts.stdin);
          else ch.end();
        });
      });
    } finally {
      release();
    }
  }

  private getSftp(): Promise<SFTPWrapper> {
    this.sftp ??= this.connect().then(
      () => new Promise<SFTPWrapper>((resolve, reject) => this.client!.sftp((err, s) => (err ? reject(new ConnectError(`${this.where()}: SFTP: ${err.message}`)) : resolve(s)))),
    );
    return this.sftp;
  }

  async putFile(localPath: string, remotePath: string, mode = 0o600): Promise<void> {
    const sftp = await this.getSftp();
    await new Promise<void>((resolve, reject) =>
      sftp.fastPut(localPath, remotePath, { mode }, (err) => (err ? reject(new ConnectError(`${this.where()}: upload to ${remotePath} failed: ${err.message}`)) : resolve())),
    );
    await new Promise<void>((resolve, reject) => sftp.chmod(remotePath, mode, (err) => (err ? reject(new ConnectError(`${this.where()}: chmod ${remotePath}: ${err.message}`)) : resolve())));
  }

  async getFile(remotePath: string): Promise<Buffer> {
    const sftp = await this.getSftp();
    return new Promise((resolve, reject) => sftp.readFile(remotePath, (err: Error | undefined, data: Buffer) => (err ? reject(new ConnectError(`${this.where()}: read ${remotePath}: ${err.message}`)) : resolve(data))));
  }

  async close(): Promise<void> {
    for (const c of this.clients.reverse()) c.end();
    this.clients = [];
    this.client = undefined;
    this.connecting = undefined;
    this.sftp = undefined;
  }
}

export function createExecutor(spec: ConnectionSpec, opts: SshOptions = {}): Executor {
  return new SshExecutor(spec, opts);
}
