/**
 * The cluster-wide apply lock, once Consul runs: a Consul session (TTL, renewed while the apply runs, deleted
 * with its lock if rtctl dies) holding the KV key `rtctl/apply-lock`. Applies from different machines — a CI job
 * and a laptop — exclude each other, whatever hosts they target. Talks to the local agent of the first Consul
 * server that answers, over that host's existing SSH connection; the management token stays on the server
 * (sent to curl on stdin, never in argv).
 */
import { LockError } from '../errors.js';
import type { Executor } from '../executors/types.js';
import type { LockInfo } from '../facts/probe.js';
import { sh } from '../util/shell.js';

export const LOCK_KEY = 'rtctl/apply-lock';
const TTL_SECONDS = 60;

/** curl to the local agent with the management token as a header read from stdin; `path` may use $sid. */
const CURL = (method: string, path: string, body?: string) =>
  `printf 'X-Consul-Token: %s\\n' "$(cat /etc/consul.d/management.token)" | curl -sS -f -H @- -X ${method} ${body !== undefined ? `--data-binary ${sh(body)} ` : ''}"http://127.0.0.1:8500${path}"`;

/** Consul not installed or not answering on this server: no cluster lock (yet). /v1/status/leader needs no token. */
const READY = '[ -r /etc/consul.d/management.token ] && command -v curl >/dev/null && [ -n "$(curl -sf http://127.0.0.1:8500/v1/status/leader | tr -d \'"\')" ] || { echo "@none"; exit 0; }';

export class ConsulLock {
  private timer?: NodeJS.Timeout;
  private readonly ex: Executor;
  private readonly session: string;

  private constructor(ex: Executor, session: string) {
    this.ex = ex;
    this.session = session;
  }

  /**
   * Takes the lock through one of `servers` (executors of the Consul servers). Returns undefined when no
   * server runs Consul yet (the first apply installs it; host locks still apply). Throws LockError naming the
   * holder when another apply has it.
   */
  static async acquire(servers: Executor[], info: LockInfo, warn: (line: string) => void = () => {}): Promise<ConsulLock | undefined> {
    const problems: string[] = [];
    for (const ex of servers) {
      let out: string;
      try {
        await ex.connect();
        const r = await ex.run(['sh', '-c', `${READY}
sid=$(${CURL('PUT', '/v1/session/create', JSON.stringify({ Name: `rtctl apply ${info.run}`, TTL: `${TTL_SECONDS}s`, Behavior: 'delete', LockDelay: '1s' }))} | sed -n 's/.*"ID": *"\\([^"]*\\)".*/\\1/p') || exit 1
[ -n "$sid" ] || { echo "@error no session"; exit 0; }
got=$(${CURL('PUT', `/v1/kv/${LOCK_KEY}?acquire=$sid`, JSON.stringify(info))})
if [ "$got" = true ]; then echo "@held $sid"; else
  echo "@busy $(${CURL('GET', `/v1/kv/${LOCK_KEY}?raw`)})"
  ${CURL('PUT', '/v1/session/destroy/$sid')} >/dev/null
fi`]);
        out = r.stdout.trim();
        if (r.code !== 0) {
          problems.push(`${ex.host}: ${(r.stderr.trim().split('\n').pop() ?? '') || `exit ${r.code}`}`);
          continue;
        }
      } catch (err) {
        problems.push(`${ex.host}: ${(err as Error).message}`);
        continue;
      }
      if (out.startsWith('@none')) continue;
      const held = /^@held (\S+)/m.exec(out);
      if (held) {
        const lock = new ConsulLock(ex, held[1]!);
        lock.timer = setInterval(() => void lock.renew(), (TTL_SECONDS / 3) * 1000);
        lock.timer.unref();
        return lock;
      }
      const busy = /^@busy (.*)$/m.exec(out);
      if (busy) {
        let holder: Partial<LockInfo> = {};
        try {
          holder = JSON.parse(busy[1]!) as Partial<LockInfo>;
        } catch {
          /* an unreadable value still means: locked */
        }
        throw new LockError(`the platform is locked in Consul (${LOCK_KEY}) by ${holder.by ?? 'unknown'} (pid ${holder.pid ?? '?'}, run ${holder.run ?? '?'}) since ${holder.since ?? '?'}; it is released when that apply ends, or ${TTL_SECONDS} s after it died`);
      }
    }
    // Consul running but the lock could not be taken: say so, and go on with the per-host locks only.
    if (problems.length) warn(`warning: no cluster-wide lock in Consul (${problems.join('; ')}); relying on per-host locks`);
    return undefined;
  }

  private async renew(): Promise<void> {
    await this.ex.run(['sh', '-c', `${CURL('PUT', `/v1/session/renew/${this.session}`)} >/dev/null`]).catch(() => undefined);
  }

  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.ex
      .run(['sh', '-c', `${CURL('PUT', `/v1/kv/${LOCK_KEY}?release=${this.session}`)} >/dev/null; ${CURL('PUT', `/v1/session/destroy/${this.session}`)} >/dev/null`])
      .catch(() => undefined);
  }
}
