/**
 * The cluster-wide apply lock, once Consul runs: a Consul session (TTL, renewed while the apply runs, deleted
 * with its lock if rtctl dies) holding the KV key `rtctl/apply-lock`. The session has no node checks: a Consul
 * restart on the host it was taken through (the apply itself may restart it) must not drop the lock; only the
 * TTL ends it, and Consul invalidates a session up to twice its TTL after the last renewal. Applies from
 * different machines — a CI job and a laptop — exclude each other, whatever hosts they target. Talks to the
 * local agent of the first Consul server that answers, over that host's existing SSH connection; the management
 * token stays on the server (sent to curl on stdin, never in argv).
 */
import { LockError } from '../errors.js';
import type { Executor } from '../executors/types.js';
import type { LockInfo } from '../facts/probe.js';
import { sh } from '../util/shell.js';

export const LOCK_KEY = 'rtctl/apply-lock';
const TTL_SECONDS = 30;
/** Consul's servers invalidate a session at twice its TTL after the last renewal (sessionTTLMultiplier). */
export const LOCK_EXPIRY_SECONDS = 2 * TTL_SECONDS;
/** How long to retry a lock nobody holds but Consul refuses (its lock-delay after an invalidated holder). */
const LOCK_DELAY_WAIT = 20;

/** curl to the local agent with the management token as a header read from stdin; `path` may use $sid. */
const CURL = (method: string, path: string, body?: string) =>
  `printf 'X-Consul-Token: %s\\n' "$(cat /etc/consul.d/management.token)" | curl -sS -f -H @- -X ${method} ${body !== undefined ? `--data-binary ${sh(body)} ` : ''}"http://127.0.0.1:8500${path}"`;

/** Consul not installed or not answering on this server: no cluster lock (yet). /v1/status/leader needs no token. */
const READY = '[ -r /etc/consul.d/management.token ] && command -v curl >/dev/null && [ -n "$(curl -sf http://127.0.0.1:8500/v1/status/leader | tr -d \'"\')" ] || { echo "@none"; exit 0; }';

export class ConsulLock {
  private timer?: NodeJS.Timeout;
  private readonly ex: Executor;
  private readonly session: string;
  private readonly warn: (line: string) => void;
  /** Consul no longer knows the session: another apply may take the lock. Said once. */
  lost = false;

  private constructor(ex: Executor, session: string, warn: (line: string) => void) {
    this.ex = ex;
    this.session = session;
    this.warn = warn;
  }

  /**
   * Takes the lock through one of `servers` (executors of the Consul servers). Returns undefined when no
   * server runs Consul yet (the first apply installs it; host locks still apply). Throws LockError naming the
   * holder when another apply has it.
   */
  static async acquire(servers: Executor[], info: LockInfo, warn: (line: string) => void = () => {}): Promise<ConsulLock | undefined> {
    const { answer, problems } = await firstServer(servers, `${READY}
sid=$(${CURL('PUT', '/v1/session/create', JSON.stringify({ Name: `rtctl apply ${info.run}`, TTL: `${TTL_SECONDS}s`, Behavior: 'delete', LockDelay: '1s', Checks: [], NodeChecks: [] }))} | sed -n 's/.*"ID": *"\\([^"]*\\)".*/\\1/p') || exit 1
[ -n "$sid" ] || { echo "@error no session"; exit 0; }
i=0
while :; do
  got=$(${CURL('PUT', `/v1/kv/${LOCK_KEY}?acquire=$sid`, JSON.stringify(info))})
  [ "$got" = true ] && { echo "@held $sid"; exit 0; }
  v=$(${CURL('GET', `/v1/kv/${LOCK_KEY}?raw`)} 2>/dev/null)
  # Refused with nobody holding it: the key is in Consul's lock-delay after its last holder's session was
  # invalidated (${LOCK_DELAY_WAIT} s covers Consul's default 15 s); try again.
  if [ -n "$v" ] || [ $i -ge ${LOCK_DELAY_WAIT} ]; then
    echo "@busy $v"
    ${CURL('PUT', '/v1/session/destroy/$sid')} >/dev/null
    exit 0
  fi
  i=$((i+1)); sleep 1
done`);
    const held = answer && /^@held (\S+)/m.exec(answer.out);
    if (answer && held) {
      const lock = new ConsulLock(answer.ex, held[1]!, warn);
      lock.timer = setInterval(() => void lock.renew(), (TTL_SECONDS / 3) * 1000);
      lock.timer.unref();
      return lock;
    }
    const busy = answer && /^@busy ?(.*)$/m.exec(answer.out);
    if (busy) {
      if (!busy[1]) throw new LockError(`Consul refused the lock (${LOCK_KEY}) for ${LOCK_DELAY_WAIT} s though nobody holds it (its lock-delay after a holder's session was invalidated?); try again`);
      const holder = parseHolder(busy[1]); // an unreadable value still means: locked
      throw new LockError(
        `the platform is locked in Consul (${LOCK_KEY}) by ${holder.by ?? 'unknown'} (pid ${holder.pid ?? '?'}, run ${holder.run ?? '?'}) since ${holder.since ?? '?'}; ` +
          `it is released when that apply ends, or at most ${LOCK_EXPIRY_SECONDS} s after it died; if it died, \`rtctl unlock --cluster ${holder.run ?? 'RUN'}\` removes it now`,
      );
    }
    // Consul running but the lock could not be taken: say so, and go on with the per-host locks only.
    if (answer) problems.push(`${answer.ex.host}: ${answer.out.replace(/^@error /, '')}`);
    if (problems.length) warn(`warning: no cluster-wide lock in Consul (${problems.join('; ')}); relying on per-host locks`);
    return undefined;
  }

  /**
   * Renews the session. A renewal that can't reach Consul is retried at the next tick (the TTL leaves two more);
   * one Consul answers with 404 means the session is gone — the lock with it — and is said once.
   */
  async renew(): Promise<void> {
    const r = await this.ex.run(['sh', '-c', `err=$(${CURL('PUT', `/v1/session/renew/${this.session}`)} 2>&1 >/dev/null); rc=$?; case "$err" in *404*) echo "@gone" ;; esac; exit $rc`]).catch(() => undefined);
    if (!this.lost && r?.stdout.includes('@gone')) {
      this.lost = true;
      this.warn(`warning: the cluster-wide lock in Consul (${LOCK_KEY}) was lost: Consul no longer knows this apply's session (expired after ${LOCK_EXPIRY_SECONDS} s without renewal?); another apply may start; the per-host locks still hold`);
    }
  }

  /** Removes the key while this session still holds it, then the session: no holder record is left behind. */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    try {
      const kv = (await this.ex.run(['sh', '-c', `${CURL('GET', `/v1/kv/${LOCK_KEY}`)} 2>/dev/null`])).stdout.trim();
      const entry = kv ? parseLockEntry(kv) : undefined;
      await this.ex.run(['sh', '-c', entry?.session === this.session ? removeLock(this.session, entry.index) : destroySession(this.session)]);
    } catch {
      await this.ex.run(['sh', '-c', destroySession(this.session)]).catch(() => undefined);
    }
  }

  /**
   * `rtctl unlock --cluster RUN`: removes the Consul lock of a dead apply, only if run `run` holds it (like
   * `terraform force-unlock ID`: naming the run keeps it from removing a live apply's lock by mistake).
   * Returns the holder removed, or undefined when the platform is not locked.
   */
  static async forceRelease(servers: Executor[], run: string): Promise<Partial<LockInfo> | undefined> {
    const { answer, problems } = await firstServer(servers, `${READY}
out=$(${CURL('GET', `/v1/kv/${LOCK_KEY}`)} 2>&1) && echo "@kv $out" || case "$out" in *404*) echo "@free" ;; *) echo "$out" >&2; exit 1 ;; esac`);
    if (!answer) throw new LockError(problems.length ? `no Consul server answered (${problems.join('; ')})` : 'Consul runs on no server yet: there is no cluster lock');
    if (answer.out.startsWith('@free')) return undefined;
    const kv = parseLockEntry(answer.out.replace(/^@kv /, ''));
    if (!kv.session) return undefined; // a record no session holds (left by an older rtctl): not a lock
    if (kv.holder.run !== run) {
      throw new LockError(`the Consul lock (${LOCK_KEY}) is held by run ${kv.holder.run ?? '?'} (${kv.holder.by ?? 'unknown'}, pid ${kv.holder.pid ?? '?'}), not ${run}; nothing removed`);
    }
    const r = await answer.ex.run(['sh', '-c', removeLock(kv.session, kv.index)]);
    if (r.code !== 0) throw new LockError(`${answer.ex.host}: could not remove the Consul lock: ${r.stderr.trim() || `exit ${r.code}`}`);
    return kv.holder;
  }
}

const destroySession = (session: string) => `${CURL('PUT', `/v1/session/destroy/${session}`)} >/dev/null`;

/**
 * Removes the lock `session` holds: the key, by check-and-set on the index read with it (a lock another apply
 * took meanwhile is never touched), then the session in any case (invalidating it deletes a key it still holds:
 * Behavior delete), whose result is the script's.
 */
const removeLock = (session: string, index: number) => `${CURL('DELETE', `/v1/kv/${LOCK_KEY}?cas=${index}`)} >/dev/null; ${destroySession(session)}`;

/** The holder a lock value names (JSON); an unreadable one names nobody. */
function parseHolder(text: string): Partial<LockInfo> {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' ? (v as Partial<LockInfo>) : {};
  } catch {
    return {};
  }
}

/**
 * Runs `script` on the first Consul server that answers it; a script printing `@none` (Consul not running
 * there) passes to the next. Returns that server's output, or none, with what went wrong on the others.
 */
async function firstServer(servers: Executor[], script: string): Promise<{ answer?: { ex: Executor; out: string }; problems: string[] }> {
  const problems: string[] = [];
  for (const ex of servers) {
    try {
      await ex.connect();
      const r = await ex.run(['sh', '-c', script]);
      if (r.code !== 0) {
        problems.push(`${ex.host}: ${(r.stderr.trim().split('\n').pop() ?? '') || `exit ${r.code}`}`);
        continue;
      }
      const out = r.stdout.trim();
      if (!out.startsWith('@none')) return { answer: { ex, out }, problems };
    } catch (err) {
      problems.push(`${ex.host}: ${(err as Error).message}`);
    }
  }
  return { problems };
}

/** One `GET /v1/kv/KEY` answer: the holder (the value, JSON in base64), its session and modify index. */
export function parseLockEntry(json: string): { holder: Partial<LockInfo>; session?: string; index: number } {
  let entry: { Value?: string | null; Session?: string; ModifyIndex?: number } = {};
  try {
    entry = (JSON.parse(json) as (typeof entry)[])[0] ?? {};
  } catch {
    throw new LockError(`unreadable answer from Consul for ${LOCK_KEY}: ${json.slice(0, 200)}`);
  }
  const holder = parseHolder(Buffer.from(entry.Value ?? '', 'base64').toString('utf8'));
  const session = entry.Session && /^[0-9a-f-]{36}$/.test(entry.Session) ? entry.Session : undefined;
  return { holder, ...(session ? { session } : {}), index: Number(entry.ModifyIndex ?? 0) };
}
