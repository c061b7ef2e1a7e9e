/**
 * `rtctl db status`, the pure parts: the one script run on each database host, the parser of its output, and
 * the rendering. Roles are read from the hosts (pg_is_in_recovery), never assumed from platform.yaml.
 */
import { pgLib, type DbMember } from './pgsh.js';

export interface ReplicaLag {
  /** application_name = the replica's host name. */
  name: string;
  state: string;
  syncState: string;
  lagBytes: number | null;
  lagSeconds: number | null;
}

export interface DbHostStatus {
  host: string;
  reachable: boolean;
  /** primary | replica | fenced | down | replica-down | standalone | nodata | unreachable */
  role: string;
  timeline: number | null;
  /** On a replica: its WAL receiver's status and the address it streams from. */
  receiver?: string;
  sender?: string;
  /** On the primary: what it sees of each replica. */
  replicas: ReplicaLag[];
  error?: string;
}

/** One round trip per host: role, timeline, receiver, and (on a primary) pg_stat_replication. */
export function statusScript(m: DbMember, port: number, peers: string[]): string {
  return `${pgLib({ port, self: m.name, configuredPrimary: m.configuredPrimary, peers })}
r=$(pg_role); echo "role=$r"
case "$r" in
  primary|standalone)
    echo "timeline=$(q "select ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int")"
    q "select 'replica=' || application_name || '|' || state || '|' || sync_state || '|' || coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint::text, '') || '|' || coalesce(extract(epoch from replay_lag)::text, '') from pg_stat_replication order by application_name" ;;
  replica)
    echo "timeline=$(q "select timeline_id from pg_control_checkpoint()")"
    q "select 'receiver=' || status || '|' || coalesce(sender_host, '') || '|' || received_tli from pg_stat_wal_receiver" ;;
esac
exit 0`;
}

export function parseStatus(host: string, out: string): DbHostStatus {
  const s: DbHostStatus = { host, reachable: true, role: 'unknown', timeline: null, replicas: [] };
  // A streaming replica's timeline is the one it receives; its last checkpoint's lags behind after a promotion.
  let streamingTli: number | null = null;
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i < 0) continue;
    const k = line.slice(0, i);
    const v = line.slice(i + 1);
    if (k === 'role') s.role = v;
    else if (k === 'timeline') s.timeline = v === '' ? null : Number(v);
    else if (k === 'receiver') {
      const [status, sender, tli] = v.split('|');
      s.receiver = status ?? '';
      s.sender = sender ?? '';
      if (tli) streamingTli = Number(tli);
    } else if (k === 'replica') {
      const [name, state, syncState, bytes, secs] = v.split('|');
      s.replicas.push({ name: name ?? '', state: state ?? '', syncState: syncState ?? '', lagBytes: bytes ? Number(bytes) : null, lagSeconds: secs ? Number(secs) : bytes === '0' ? 0 : null });
    }
  }
  if (streamingTli !== null) s.timeline = streamingTli;
  return s;
}

/** The table `rtctl db status` prints. */
export function renderStatus(all: DbHostStatus[]): string {
  const primaries = all.filter((h) => h.role === 'primary');
  const seen = new Map(primaries.flatMap((p) => p.replicas.map((r) => [r.name, r] as const)));
  const rows = [['HOST', 'ROLE', 'TIMELINE', 'STATE', 'SYNC', 'LAG BYTES', 'LAG SECONDS']];
  for (const h of all) {
    const r = seen.get(h.host);
    const state = h.role === 'replica' ? (r?.state ?? h.receiver ?? '-') : h.role === 'primary' ? 'writable' : (h.error ?? '-');
    rows.push([h.host, h.role, h.timeline === null ? '-' : String(h.timeline), state, r?.syncState ?? '-', r?.lagBytes == null ? '-' : String(r.lagBytes), r?.lagSeconds == null ? '-' : r.lagSeconds.toFixed(3)]);
  }
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const lines = rows.map((row) => row.map((x, c) => x.padEnd(w[c]!)).join('  ').trimEnd());
  if (primaries.length === 0) lines.push('', 'warning: no primary is running');
  if (primaries.length > 1) lines.push('', `warning: ${primaries.length} primaries (${primaries.map((p) => p.host).join(', ')}): split brain`);
  return `${lines.join('\n')}\n`;
}
