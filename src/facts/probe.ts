/**
 * The facts probe: ONE POSIX sh script per host reports everything the plan needs (OS, each managed path's
 * kind/owner/mode/hash, package versions, unit states, the ownership manifest, the lock). Building the script
 * and parsing its output are pure; src/facts/gather.ts runs it.
 */
import { createHash } from 'node:crypto';
import type { Resource, ResourceType } from '../model/resources.js';
import { OWNED_TYPES, TYPE_ORDER } from '../model/resources.js';
import { HANDLERS } from '../resources/index.js';
import { PROBE_PATH } from '../resources/file.js';
import type { RawFact } from '../resources/types.js';
import { shArgv } from '../util/shell.js';

/**
 * Host-side state paths, as shell expressions: on hosts the defaults apply (sudo passes no environment); the
 * I/O tests point them at temp dirs with RTCTL_STATE_DIR / RTCTL_AUDIT_LOG so they never touch this machine's.
 */
export const STATE_DIR = '${RTCTL_STATE_DIR:-/var/lib/rtctl}';
export const MANIFEST = `${STATE_DIR}/manifest`;
export const LOCK_DIR = `${STATE_DIR}/lock`;
/** Units whose restart was planned but not yet done (an interrupted apply): restarted by the next apply. */
export const PENDING = `${STATE_DIR}/pending-restarts`;
export const AUDIT_LOG = '${RTCTL_AUDIT_LOG:-/var/log/rtctl/audit.log}';

/** One line of the ownership manifest: what rtctl manages on a host. */
export interface ManifestEntry {
  type: ResourceType;
  key: string;
}

export interface LockInfo {
  by: string;
  pid: number;
  since: string;
  run: string;
}

export interface HostFacts {
  host: string;
  os: string;
  arch: string;
  hostname: string;
  manifest: ManifestEntry[];
  /** Unit ids with a restart still owed from an earlier, interrupted apply. */
  pending: string[];
  /** id → raw fields. */
  resources: Map<string, RawFact>;
  /** Set when the probe was asked to take the lock: null = we hold it now; otherwise the current holder. */
  lockHeldBy?: LockInfo | null;
}

export interface ProbeOptions {
  /** Take the apply lock atomically (mkdir) in the same round trip, recording this info. */
  lock?: LockInfo;
}

export function buildProbe(resources: readonly Resource[], opts: ProbeOptions = {}): string {
  const fns = TYPE_ORDER.map((t) => HANDLERS[t].probeFunction).join('\n');
  const calls = resources.map((r) => `p_${r.type} ${shArgv(HANDLERS[r.type].probeArgs(r))}`).join('\n');
  const lock = opts.lock
    ? `mkdir -p ${STATE_DIR}
if mkdir ${LOCK_DIR} 2>/dev/null; then printf '%s' ${shArgv([JSON.stringify(opts.lock)])} > ${LOCK_DIR}/info; emit host lock ''
else emit host lock "$(cat ${LOCK_DIR}/info 2>/dev/null || echo '{}')"; fi`
    : '';
  return `export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
emit() { printf '@%s\\t%s\\t%s\\n' "$1" "$2" "$3"; }
${PROBE_PATH}
${fns}
${lock}
if [ -r /etc/os-release ]; then . /etc/os-release; fi
emit host os "\${ID:-unknown} \${VERSION_ID:-}"; emit host arch "$(uname -m)"; emit host hostname "$(hostname)"
if [ -f ${MANIFEST} ]; then
  while IFS='	' read -r t k; do
    [ -n "$t" ] || continue
    emit host manifest "$t	$k"
    case "$t" in ${OWNED_TYPES.join('|')}) p_$t "$k" 0;; esac
  done < ${MANIFEST}
fi
if [ -f ${PENDING} ]; then while IFS= read -r u; do [ -n "$u" ] && emit host pending "$u"; done < ${PENDING}; fi
${calls}
echo '@host	done	1'
`;
}

/** Parses probe output; throws on a truncated run (no `done` marker). */
export function parseProbe(host: string, stdout: string): HostFacts {
  const resources = new Map<string, RawFact>();
  const facts: HostFacts = { host, os: '', arch: '', hostname: '', manifest: [], pending: [], resources };
  let done = false;
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('@')) continue;
    const t1 = line.indexOf('\t');
    const t2 = line.indexOf('\t', t1 + 1);
    if (t1 < 0 || t2 < 0) continue;
    const id = line.slice(1, t1);
    const field = line.slice(t1 + 1, t2);
    const value = line.slice(t2 + 1);
    if (id === 'host') {
      if (field === 'done') done = true;
      else if (field === 'os') facts.os = value.trim();
      else if (field === 'arch') facts.arch = value;
      else if (field === 'hostname') facts.hostname = value;
      else if (field === 'pending') facts.pending.push(value);
      else if (field === 'lock') facts.lockHeldBy = value === '' ? null : parseLock(value);
      else if (field === 'manifest') {
        const [type, key] = value.split('\t') as [ResourceType, string];
        if (type && key && !facts.manifest.some((m) => m.type === type && m.key === key)) facts.manifest.push({ type, key });
      }
      continue;
    }
    let r = resources.get(id);
    if (!r) resources.set(id, (r = {}));
    r[field] = value;
  }
  if (!done) throw new Error('probe output is incomplete (no end marker)');
  return facts;
}

function parseLock(s: string): LockInfo {
  try {
    const v = JSON.parse(s) as Partial<LockInfo>;
    return { by: v.by ?? 'unknown', pid: v.pid ?? 0, since: v.since ?? 'unknown', run: v.run ?? '' };
  } catch {
    return { by: 'unknown', pid: 0, since: 'unknown', run: '' };
  }
}

/** Hash of the facts a host's planned actions depend on (for stale-plan detection). */
export function factsHash(facts: HostFacts, ids: readonly string[]): string {
  const h = createHash('sha256');
  const manifest = facts.manifest.map((m) => `${m.type}\t${m.key}`).sort();
  h.update(JSON.stringify([manifest, [...facts.pending].sort()]));
  for (const id of [...ids].sort()) {
    const f = facts.resources.get(id) ?? {};
    h.update(JSON.stringify([id, Object.keys(f).sort().map((k) => [k, f[k]])]));
  }
  return h.digest('hex');
}
