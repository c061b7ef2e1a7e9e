/**
 * What plan and apply share: connect to the hosts (one SSH connection each), gather facts in one round trip
 * per host, and compute the plan. Gather → plan → apply, in one direction.
 */
import { createHash, randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { ConnectError, LockError, RtctlError } from '../errors.js';
import type { ConnectionSpec, Executor } from '../executors/types.js';
import type { Host } from '../model/platform.js';
import type { Resource } from '../model/resources.js';
import { gatherFacts } from '../facts/gather.js';
import type { HostFacts, LockInfo } from '../facts/probe.js';
import { describeLock, RELEASE_LOCK } from '../apply/host-state.js';
import { ConsulLock } from '../apply/consul-lock.js';
import { Redactor, resolveRefs, type SecretSource } from '../secrets.js';
import type { DiffContext } from '../resources/types.js';

export interface SessionOptions {
  parallel: number;
  /** Where secret references are resolved (exec probes may use them). */
  secrets?: SecretSource;
  acceptNewHostKeys: boolean;
  verbose?: boolean;
}

export function connectionSpec(h: Host): ConnectionSpec {
  return {
    name: h.name,
    address: h.address,
    port: h.port,
    user: h.user,
    become: h.become,
    ...(h.keyFile ? { keyFile: h.keyFile } : {}),
    knownHostsFile: h.knownHostsFile,
    ...(h.jump
      ? { jump: { address: h.jump.address, port: h.jump.port, user: h.jump.user, ...(h.jump.keyFile ? { keyFile: h.jump.keyFile } : {}), connectTimeoutMs: h.connectTimeoutMs, commandTimeoutMs: h.commandTimeoutMs } }
      : {}),
    connectTimeoutMs: h.connectTimeoutMs,
    commandTimeoutMs: h.commandTimeoutMs,
  };
}

export class Session {
  readonly executors = new Map<string, Executor>();
  readonly redactor = new Redactor();
  readonly run: LockInfo;
  private locked: string[] = [];
  /** Facts from the last `gather`. */
  lastFacts?: Map<string, HostFacts>;
  private clusterLock?: ConsulLock;

  readonly hosts: Host[];
  readonly opts: SessionOptions;

  constructor(hosts: Host[], opts: SessionOptions) {
    this.hosts = hosts;
    this.opts = opts;
    this.run = { by: `${userInfo().username}@${hostname()}`, pid: process.pid, since: new Date().toISOString(), run: randomUUID().slice(0, 8) };
  }

  async open(): Promise<void> {
    const { SshExecutor } = await import('../executors/ssh.js');
    for (const h of this.hosts) {
      this.executors.set(h.name, new SshExecutor(connectionSpec(h), { acceptNewHostKeys: this.opts.acceptNewHostKeys }));
    }
  }

  /** Facts from every host; with `lock`, the apply lock is taken in the same round trip. Throws one error listing every unreachable host. */
  async gather(resources: Map<string, Resource[]>, lock: boolean): Promise<Map<string, HostFacts>> {
    const secrets = this.opts.secrets;
    const { facts, errors } = await gatherFacts(this.executors, resources, {
      parallel: this.opts.parallel,
      ...(lock ? { lock: this.run } : {}),
      ...(secrets ? { resolve: (s: string) => resolveRefs(s, secrets, this.redactor) } : {}),
    });
    if (lock) this.locked = [...facts.entries()].filter(([, f]) => f.lockHeldBy === null).map(([h]) => h);
    const held = [...facts.entries()].filter(([, f]) => f.lockHeldBy);
    if (errors.size > 0 || held.length > 0) {
      await this.releaseLocks();
      const lines = [...errors.values()].map((e) => this.redactor.redact(e.message));
      if (errors.size > 0) throw new ConnectError(lines.join('\n'));
      throw new LockError(held.map(([h, f]) => describeLock(h, f.lockHeldBy!)).join('\n'));
    }
    this.lastFacts = facts;
    return facts;
  }

  /**
   * The cluster-wide lock in Consul (when the platform has Consul servers and it already runs there); the
   * per-host locks taken by `gather` still apply. Throws LockError naming the holder.
   */
  async lockCluster(servers: string[]): Promise<boolean> {
    const exs = servers.map((n) => this.executors.get(n)).filter((e): e is Executor => !!e);
    this.clusterLock = await ConsulLock.acquire(exs, this.run, (line) => process.stderr.write(`${this.redactor.redact(line)}\n`));
    return !!this.clusterLock;
  }

  async releaseLocks(): Promise<void> {
    const cluster = this.clusterLock;
    this.clusterLock = undefined;
    await cluster?.release();
    const hosts = this.locked;
    this.locked = [];
    await Promise.all(hosts.map((h) => this.executors.get(h)!.run(['sh', '-c', RELEASE_LOCK, 'rtctl', this.run.run]).catch(() => undefined)));
  }

  async close(): Promise<void> {
    await this.releaseLocks();
    await Promise.all([...this.executors.values()].map((e) => e.close().catch(() => undefined)));
  }
}

/** The planner's only window on secret values: a hash of resolved content. */
export function diffContext(secrets: SecretSource, redactor: Redactor): DiffContext {
  return { contentSha256: (content) => createHash('sha256').update(resolveRefs(content, secrets, redactor)).digest('hex') };
}

export function isRtctlError(e: unknown): e is RtctlError {
  return e instanceof RtctlError;
}
