/**
 * `rtctl drill db-failover`: the scripted DR drill. Writes continuously to the primary (one INSERT at most every
 * 50 ms, each its own SSH command: about one per 150 ms in the lab, which bounds the RTO's resolution; counting
 * commits acknowledged with synchronous_commit as configured), injects the fault — `postmaster`: kill -9
 * of the primary's postmaster; `host`: the primary's whole host powered off at once (`systemctl poweroff -ff`, no
 * clean shutdown of anything) — fails over to the best replica (fence, promote, re-point), and reports RTO (seconds
 * from the fault until a write succeeds on the new primary) and RPO (acknowledged rows missing there). Exits 2
 * when a threshold is missed. A powered-off host is not fenced (it can't be reached); its start-time fence check
 * keeps it from coming back as a second primary, and `rtctl db rejoin` makes it a replica once it is started again.
 */
import { ExitError, RtctlError } from '../errors.js';
import { bestReplica, failover, prelude, probeAll } from '../db/switchover.js';
import { collectStatus, openDb } from './db.js';
import { renderStatus } from '../db/status.js';

export interface DrillDbFailoverOptions {
  file: string;
  rtoMax: number;
  rpoMax: number;
  json?: boolean;
  acceptNewHostKeys?: boolean;
  fault?: string;
}

export const FAULTS = ['postmaster', 'host'] as const;
export type Fault = (typeof FAULTS)[number];

/** The fault, run on the primary as root. `host` returns first and powers off 0.2 s later, so the command completes. */
export function faultScript(fault: Fault): string {
  return fault === 'host'
    ? `setsid sh -c 'sleep 0.2; systemctl poweroff --force --force' </dev/null >/dev/null 2>&1 & echo ok`
    : 'kill -9 "$(head -1 "$D/postmaster.pid")"; echo ok';
}

const TABLE = 'rtctl_drill';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function drillDbFailoverCommand(opts: DrillDbFailoverOptions): Promise<void> {
  const fault = (opts.fault ?? 'postmaster') as Fault;
  if (!FAULTS.includes(fault)) throw new RtctlError(`--fault must be one of: ${FAULTS.join(', ')} (got "${opts.fault}")`);
  const { platform, session, ctx } = await openDb(opts);
  const log = (l: string) => process.stderr.write(`drill: ${l}\n`);
  try {
    const probes = await probeAll(ctx);
    const prim = probes.filter((p) => p.role === 'primary');
    if (prim.length !== 1) throw new RtctlError(`the drill needs exactly one running primary; found: ${probes.map((p) => `${p.host}=${p.role}`).join(', ')}`);
    const old = prim[0]!.host;
    if (!bestReplica(probes)) throw new RtctlError('the drill needs at least one streaming replica');
    await ctx.run(old, `${prelude(ctx, old)}q 'drop table if exists ${TABLE}; create table ${TABLE}(id bigint primary key, at timestamptz not null default now())' >/dev/null; q 'select 1' >/dev/null; echo ok`, 30_000);

    // The writer: one INSERT per ~50 ms through the SSH connection of whichever host it believes is the primary.
    const acked: number[] = [];
    let target = old;
    let stop = false;
    let firstAfter: number | null = null;
    let killedAt: number | null = null;
    const started = Date.now();
    const writer = (async () => {
      let id = 0;
      while (!stop && Date.now() - started < 60_000) {
        const t = Date.now();
        id += 1;
        const host = target;
        try {
          const r = await session.executors.get(host)!.run(['runuser', '-u', 'postgres', '--', 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', 'postgres', '-c', `insert into ${TABLE}(id) values (${id})`], { timeoutMs: 5_000 });
          if (r.code === 0) {
            acked.push(id);
            // Recovery is a write acknowledged by another host than the old primary (one in flight there at the fault doesn't count).
            if (killedAt !== null && firstAfter === null && host !== old) firstAfter = Date.now();
          }
        } catch {
          // not acknowledged
        }
        const wait = 50 - (Date.now() - t);
        if (wait > 0) await sleep(wait);
      }
    })();

    // At least 3 s and 20 acknowledged rows of steady writing before the kill.
    while ((acked.length < 20 || Date.now() - started < 3_000) && Date.now() - started < 20_000) await sleep(100);
    if (acked.length === 0) {
      stop = true;
      await writer;
      throw new RtctlError(`no write succeeded on ${old} before the kill`);
    }
    log(`${acked.length} rows acknowledged on ${old}; ${fault === 'host' ? 'power off the host' : 'kill -9 its postmaster'}`);
    const faultAt = Date.now() + (fault === 'host' ? 200 : 0);
    await ctx.run(old, `${prelude(ctx, old)}${faultScript(fault)}`, 15_000);
    killedAt = faultAt;
    // Fail over once the old primary is seen gone (at once for kill -9; a moment for the power-off).
    let after = await probeAll(ctx);
    for (let i = 0; i < 60 && after.find((p) => p.host === old)?.role === 'primary'; i++) {
      await sleep(250);
      after = await probeAll(ctx);
    }
    log(`${old} is ${after.find((p) => p.host === old)?.role}`);
    const to = bestReplica(after);
    if (!to) throw new RtctlError('no streaming replica left to fail over to');
    log(`fail over to ${to} (the replica with the most WAL received)`);
    target = to;
    await failover({ ...ctx, log: (l) => log(l) }, to, false);
    const deadline = Date.now() + 30_000;
    while (firstAfter === null && Date.now() < deadline) await sleep(50);
    await sleep(2_000);
    stop = true;
    await writer;

    const rto = firstAfter === null ? null : (firstAfter - killedAt) / 1000;
    const found = Number(
      (await ctx.run(to, `${prelude(ctx, to)}q "select count(*) from ${TABLE} where id = any('{${acked.join(',')}}'::bigint[])"`, 60_000)).trim(),
    );
    const rpo = acked.length - found;
    const ok = rto !== null && rto <= opts.rtoMax && rpo <= opts.rpoMax;
    const all = await collectStatus(session, platform);
    const result = { drill: 'db-failover', fault, oldPrimary: old, newPrimary: to, acknowledged: acked.length, rtoSeconds: rto, rpoRows: rpo, rtoMax: opts.rtoMax, rpoMax: opts.rpoMax, passed: ok, hosts: all };
    if (opts.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    else {
      process.stdout.write(renderStatus(all));
      process.stdout.write(`\nRTO ${rto === null ? 'none (no write succeeded)' : `${rto.toFixed(2)} s`} (max ${opts.rtoMax} s)\nRPO ${rpo} rows of ${acked.length} acknowledged (max ${opts.rpoMax})\n${ok ? 'PASS' : 'FAIL'}\n`);
    }
    if (!ok) throw new ExitError(2);
  } finally {
    await session.close();
  }
}
