/**
 * Role changes of the PostgreSQL cluster: `rtctl db switchover`, `db failover`, `db rejoin` (and the drill's
 * failover). Pure sh builders (each runs on one host, after the pgLib prelude) plus a small orchestrator that runs
 * them through a `run(host, script)` function (the Session's executors in the CLI, a fake in unit tests).
 * Roles are read from the hosts, never from platform.yaml.
 */
import { FENCE_MARKER, pgLib, primaryConninfo, slotName, STATE_DIR, WRITE_STANDBY_CONFIG, type DbMember } from './pgsh.js';
import { RtctlError } from '../errors.js';

/** A target further behind the best replica than this (bytes of WAL received) needs --force. */
export const FAR_BEHIND_BYTES = 16 * 1024 * 1024;

export interface DbCtx {
  members: DbMember[];
  port: number;
  /** Runs a script on a host; resolves with stdout, rejects (with stderr in the message) on a non-zero exit. */
  run: (host: string, script: string, timeoutMs: number) => Promise<string>;
  log: (line: string) => void;
}

export interface Probe {
  host: string;
  reachable: boolean;
  role: string;
  /** primary: pg_current_wal_lsn; replica: pg_last_wal_receive_lsn (or replay when nothing received). */
  lsn: string | null;
  replay: string | null;
  error?: string;
}

export function lsnToBigInt(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)$/.exec(lsn.trim());
  if (!m) throw new Error(`not an LSN: ${lsn}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function parseKv(out: string): Record<string, string> {
  const r: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) r[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return r;
}

/** The prelude of every script: pgLib for this host plus write_standby and wait_streaming. */
export function prelude(ctx: Pick<DbCtx, 'members' | 'port'>, host: string): string {
  const m = ctx.members.find((x) => x.name === host)!;
  return `${pgLib({ port: ctx.port, self: m.name, configuredPrimary: m.configuredPrimary, peers: ctx.members.filter((x) => x.name !== host).map((x) => x.address) })}
${WRITE_STANDBY_CONFIG}
wait_streaming() { i=0; while [ $i -lt "$2" ]; do [ "$(q "select status from pg_stat_wal_receiver where sender_host = '$1'")" = streaming ] && return 0; sleep 1; i=$((i+1)); done; return 1; }
`;
}

export function probeScript(): string {
  return `r=$(pg_role); echo "role=$r"
case "$r" in
  primary|standalone) echo "lsn=$(q 'select pg_current_wal_lsn()')" ;;
  replica) echo "lsn=$(q 'select coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())')"; echo "replay=$(q 'select pg_last_wal_replay_lsn()')" ;;
esac
exit 0`;
}

export function parseProbe(host: string, out: string): Probe {
  const kv = parseKv(out);
  return { host, reachable: true, role: kv.role ?? 'unknown', lsn: kv.lsn || null, replay: kv.replay || null };
}

/** Clean stop of the primary after a CHECKPOINT; prints the final (shutdown) checkpoint location and state. */
export function stopPrimaryScript(): string {
  return `set -e
q 'CHECKPOINT' >/dev/null
systemctl stop $U
$B/pg_controldata "$D" | sed -n 's/^Latest checkpoint location: *\\(.*\\)$/checkpoint=\\1/p; s/^Database cluster state: *\\(.*\\)$/state=\\1/p'`;
}

/** On the target: wait until it has replayed past LSN (the old primary's shutdown checkpoint record). */
export function waitReplayScript(lsn: string, timeoutSec: number): string {
  return `i=0
while [ $i -lt ${timeoutSec} ]; do
  [ "$(q "select pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '${lsn}') > 0")" = t ] && { echo "replay=$(q 'select pg_last_wal_replay_lsn()')"; exit 0; }
  sleep 0.5; i=$((i+1))
done
echo "replay $(q 'select pg_last_wal_replay_lsn()') has not passed ${lsn}" >&2; exit 1`;
}

/** Promote this replica, wait until it is writable, CHECKPOINT (pg_rewind reads the new timeline from the control file), create the others' slots. */
export function promoteScript(slots: string[]): string {
  return `set -e
[ "$(q 'select pg_promote(true, 60)')" = t ] || { echo "pg_promote failed" >&2; exit 1; }
i=0; while [ "$(q 'select pg_is_in_recovery()')" != f ]; do i=$((i+1)); [ $i -lt 120 ] || { echo "still in recovery" >&2; exit 1; }; sleep 0.5; done
q 'CHECKPOINT' >/dev/null
for s in ${slots.join(' ')}; do q "select pg_create_physical_replication_slot('$s') where not exists (select from pg_replication_slots where slot_name = '$s')" >/dev/null; done
echo "timeline=$(q "select timeline_id from pg_control_checkpoint()")"`;
}

/** The end of every script that turns a host into a replica: streaming from the primary within SECS, or a failure naming both. */
function streamingOrFail(host: string, primaryAddress: string, secs: number): string {
  return `wait_streaming ${primaryAddress} ${secs} || { echo "${host} is not streaming from ${primaryAddress}" >&2; exit 1; }
echo ok`;
}

/** A former primary's replication slots (copied with its data) that nobody uses any more. */
const DROP_STALE_SLOTS = `q "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like 'rtctl\\_%' and not active" >/dev/null || true`;

/** A running (or stopped) replica follows a new primary: primary_conninfo (its own application_name) + reload, then streaming. */
export function repointScript(ctx: Pick<DbCtx, 'port'>, host: string, primaryAddress: string): string {
  const ci = primaryConninfo(primaryAddress, ctx.port, host);
  return `r=$(pg_role)
case "$r" in
  replica)
    q "alter system set primary_conninfo = '${ci}'" >/dev/null
    q "alter system set primary_slot_name = '${slotName(host)}'" >/dev/null
    q 'select pg_reload_conf()' >/dev/null ;;
  replica-down) write_standby '${ci}' ${slotName(host)}; systemctl start $U ;;
  *) echo "${host} is $r, not a replica" >&2; exit 1 ;;
esac
${streamingOrFail(host, primaryAddress, 30)}`;
}

/** The old primary (stopped cleanly) becomes a standby of the new one without rewind. */
export function demoteScript(ctx: Pick<DbCtx, 'port'>, host: string, primaryAddress: string): string {
  const ci = primaryConninfo(primaryAddress, ctx.port, host);
  return `set -e
systemctl stop $U
write_standby '${ci}' ${slotName(host)}
systemctl start $U
${DROP_STALE_SLOTS}
${streamingOrFail(host, primaryAddress, 30)}`;
}

/** Stop, pg_rewind against the primary, standby config, unfence, start, verify streaming. */
export function rejoinScript(ctx: Pick<DbCtx, 'port'>, host: string, primaryAddress: string): string {
  const ci = primaryConninfo(primaryAddress, ctx.port, host);
  return `set -e
systemctl stop $U || true
rm -f "$D/standby.signal"
runuser -u postgres -- $B/pg_rewind -D "$D" --source-server='${ci} dbname=postgres' --config-file=$C/postgresql.conf 2>&1
write_standby '${ci}' ${slotName(host)}
rm -f ${FENCE_MARKER}
systemctl start $U
${DROP_STALE_SLOTS}
${streamingOrFail(host, primaryAddress, 60)}`;
}

/** `db rejoin --reclone`: stop, a fresh base backup through the host's slot, standby config, unfence, start, verify streaming. */
export function recloneScript(ctx: Pick<DbCtx, 'port'>, host: string, primaryAddress: string): string {
  const ci = primaryConninfo(primaryAddress, ctx.port, host);
  return `set -e
systemctl stop $U || true
base_backup '${ci}' ${slotName(host)}
rm -f ${FENCE_MARKER}
systemctl start $U
${streamingOrFail(host, primaryAddress, 60)}`;
}

/** Stop postgres and leave the fence marker: the unit's ExecStartPre refuses to start until `db rejoin`. */
export function fenceScript(newPrimary: string): string {
  return `systemctl stop $U || true
pid=$(head -1 "$D/postmaster.pid" 2>/dev/null || true); [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
mkdir -p ${STATE_DIR}; echo "fenced by rtctl db failover to ${newPrimary} at $(date -u +%FT%TZ)" > ${FENCE_MARKER}
echo ok`;
}

/** Which replica may be promoted: the one asked for, unless it is far behind the best one (then --force). */
export function checkTarget(probes: Probe[], to: string, force: boolean): { best: string; behindBytes: bigint } {
  const reps = probes.filter((p) => p.role === 'replica' && p.lsn);
  const t = reps.find((p) => p.host === to);
  if (!t) throw new RtctlError(`${to} is not a running replica (${probes.find((p) => p.host === to)?.role ?? 'not a database host'})`);
  const best = reps.reduce((a, b) => (lsnToBigInt(b.lsn!) > lsnToBigInt(a.lsn!) ? b : a));
  const behind = lsnToBigInt(best.lsn!) - lsnToBigInt(t.lsn!);
  if (behind > BigInt(FAR_BEHIND_BYTES) && !force) {
    throw new RtctlError(`${to} is ${behind} bytes of WAL behind ${best.host} (received ${t.lsn} vs ${best.lsn}): failing over to it loses those writes; use --to ${best.host}, or --force`);
  }
  return { best: best.host, behindBytes: behind };
}

async function probeAll(ctx: DbCtx): Promise<Probe[]> {
  return Promise.all(
    ctx.members.map(async (m) => {
      try {
        return parseProbe(m.name, await ctx.run(m.name, `${prelude(ctx, m.name)}${probeScript()}`, 20_000));
      } catch (err) {
        return { host: m.name, reachable: false, role: 'unreachable', lsn: null, replay: null, error: (err as Error).message.split('\n')[0] ?? '' };
      }
    }),
  );
}

const addr = (ctx: DbCtx, h: string) => ctx.members.find((m) => m.name === h)!.address;
const on = (ctx: DbCtx, h: string, body: string, ms = 120_000) => ctx.run(h, `${prelude(ctx, h)}${body}`, ms);

async function promoteAndRepoint(ctx: DbCtx, to: string, others: string[]): Promise<void> {
  ctx.log(`promote ${to}`);
  await on(ctx, to, promoteScript(ctx.members.filter((m) => m.name !== to).map((m) => slotName(m.name))));
  await Promise.all(
    others.map(async (h) => {
      ctx.log(`re-point ${h} to ${to}`);
      try {
        await on(ctx, h, repointScript(ctx, h, addr(ctx, to)));
      } catch (err) {
        ctx.log(`${h} does not stream after re-pointing (${(err as Error).message.split('\n')[0]}): pg_rewind`);
        await on(ctx, h, rejoinScript(ctx, h, addr(ctx, to)), 300_000);
      }
    }),
  );
}

export async function switchover(ctx: DbCtx, to: string): Promise<void> {
  const probes = await probeAll(ctx);
  const prim = probes.filter((p) => p.role === 'primary');
  if (prim.length !== 1) throw new RtctlError(`switchover needs exactly one running primary; found: ${probes.map((p) => `${p.host}=${p.role}`).join(', ')}`);
  const old = prim[0]!.host;
  if (old === to) throw new RtctlError(`${to} is already the primary`);
  const bad = probes.filter((p) => p.role !== 'replica' && p.host !== old);
  if (bad.length > 0) throw new RtctlError(`switchover needs every other host streaming: ${bad.map((p) => `${p.host}=${p.role}`).join(', ')} (use db failover / db rejoin)`);
  ctx.log(`checkpoint and stop ${old} (the primary)`);
  const stop = parseKv(await on(ctx, old, stopPrimaryScript()));
  if (stop.state !== 'shut down' || !stop.checkpoint) throw new RtctlError(`${old} did not shut down cleanly (${stop.state})`);
  ctx.log(`wait until ${to} has replayed past ${stop.checkpoint}`);
  try {
    await on(ctx, to, waitReplayScript(stop.checkpoint, 120));
  } catch (err) {
    ctx.log(`${to} did not catch up: starting ${old} again as the primary`);
    await on(ctx, old, 'systemctl start $U');
    throw err;
  }
  await promoteAndRepoint(ctx, to, probes.filter((p) => p.host !== old && p.host !== to).map((p) => p.host));
  ctx.log(`${old} becomes a replica of ${to}`);
  try {
    await on(ctx, old, demoteScript(ctx, old, addr(ctx, to)));
  } catch (err) {
    ctx.log(`${old} does not stream (${(err as Error).message.split('\n')[0]}): pg_rewind`);
    await on(ctx, old, rejoinScript(ctx, old, addr(ctx, to)), 300_000);
  }
}

/**
 * Promotes `to` with the primary lost. `lostBytes`: WAL the best replica had received and `to` had not — the
 * acknowledged writes a forced promotion gives up (0 when `to` is the best replica).
 */
export async function failover(ctx: DbCtx, to: string, force: boolean): Promise<{ fenced: string[]; unreachable: string[]; lostBytes: number }> {
  const probes = await probeAll(ctx);
  const running = probes.filter((p) => p.role === 'primary' || p.role === 'standalone');
  if (running.length > 0) throw new RtctlError(`${running.map((p) => p.host).join(', ')} is a running primary: use rtctl db switchover --to ${to}`);
  const { best, behindBytes } = checkTarget(probes, to, force);
  if (behindBytes > 0n) ctx.log(`warning: ${to} is ${behindBytes} bytes of WAL behind ${best}: those writes are lost; ${best} is rewound (pg_rewind) if it can't follow ${to}`);
  const fenced: string[] = [];
  const unreachable = probes.filter((p) => !p.reachable).map((p) => p.host);
  for (const p of probes.filter((x) => x.reachable && x.role !== 'replica')) {
    ctx.log(`fence ${p.host} (${p.role})`);
    await on(ctx, p.host, fenceScript(to), 60_000);
    fenced.push(p.host);
  }
  for (const h of unreachable) ctx.log(`warning: ${h} is unreachable, not fenced now; its start-time fence check refuses to start it as a primary while ${to} is one`);
  await promoteAndRepoint(ctx, to, probes.filter((p) => p.role === 'replica' && p.host !== to).map((p) => p.host));
  return { fenced, unreachable, lostBytes: Number(behindBytes) };
}

/** The old primary (or a replica that can't stream) becomes a replica: pg_rewind, or with `reclone` a fresh base backup. */
export async function rejoin(ctx: DbCtx, host: string, reclone = false): Promise<void> {
  const probes = await probeAll(ctx);
  const prim = probes.filter((p) => p.role === 'primary' && p.host !== host);
  if (prim.length !== 1) throw new RtctlError(`rejoin needs exactly one running primary other than ${host}; found: ${probes.map((p) => `${p.host}=${p.role}`).join(', ')}`);
  if (probes.find((p) => p.host === host)?.role === 'primary') throw new RtctlError(`${host} is a running primary: two primaries (split brain); stop one first`);
  const p = prim[0]!.host;
  ctx.log(`slot ${slotName(host)} on ${p}; ${reclone ? 'fresh base backup of' : 'pg_rewind'} ${host} from ${p}`);
  await on(ctx, p, `q 'CHECKPOINT' >/dev/null; q "select pg_create_physical_replication_slot('${slotName(host)}') where not exists (select from pg_replication_slots where slot_name = '${slotName(host)}')" >/dev/null; echo ok`);
  try {
    await on(ctx, host, reclone ? recloneScript(ctx, host, addr(ctx, p)) : rejoinScript(ctx, host, addr(ctx, p)), 600_000);
  } catch (err) {
    if (reclone) throw err;
    // pg_rewind can't bring back WAL the primary no longer has (more than wal_keep_size behind): say what can.
    throw new RtctlError(`${(err as Error).message.split('\n')[0]}; if ${host} lacks WAL the primary no longer keeps, copy it afresh: rtctl db rejoin ${host} --reclone`);
  }
}

/** The best replica to fail over to: the highest received LSN. */
export function bestReplica(probes: Probe[]): string | undefined {
  const reps = probes.filter((p) => p.role === 'replica' && p.lsn);
  if (reps.length === 0) return undefined;
  return reps.reduce((a, b) => (lsnToBigInt(b.lsn!) > lsnToBigInt(a.lsn!) ? b : a)).host;
}

export { probeAll };
