/**
 * `rtctl db …`: operations on the PostgreSQL cluster of the `database` section. Thin: connects through the
 * Session's executors and runs the pure scripts of src/db/.
 */
import { loadPlatform } from '../config/load.js';
import { ConfigError, ExitError, RtctlError } from '../errors.js';
import { dbMembers, dbPort } from '../db/pgsh.js';
import { parseStatus, renderStatus, statusScript, type DbHostStatus } from '../db/status.js';
import { Session } from './session.js';
import { failover, rejoin, switchover, type DbCtx } from '../db/switchover.js';
import type { Platform } from '../model/platform.js';

export interface DbStatusOptions {
  file: string;
  json?: boolean;
  acceptNewHostKeys?: boolean;
}

export async function dbStatusCommand(opts: DbStatusOptions): Promise<void> {
  const platform = loadPlatform(opts.file);
  const members = dbMembers(platform);
  if (members.length === 0) throw new ConfigError(`${opts.file}: no \`database\` section`);
  const hosts = members.map((m) => platform.hosts.find((h) => h.name === m.name)!);
  const session = new Session(hosts, { parallel: 20, acceptNewHostKeys: opts.acceptNewHostKeys ?? false });
  try {
    await session.open();
    const all = await collectStatus(session, platform);
    process.stdout.write(opts.json ? `${JSON.stringify({ hosts: all }, null, 2)}\n` : renderStatus(all));
    if (all.filter((h) => h.role === 'primary').length !== 1) throw new ExitError(1);
  } finally {
    await session.close();
  }
}

/** `db status` of every database host (one round trip each), through an open Session. */
export async function collectStatus(session: Session, platform: Platform): Promise<DbHostStatus[]> {
    const members = dbMembers(platform);
    const port = dbPort(platform.doc.database);
    return Promise.all(
      members.map(async (m) => {
        const ex = session.executors.get(m.name)!;
        try {
          await ex.connect();
          const peers = members.filter((x) => x.name !== m.name).map((x) => x.address);
          const r = await ex.runScript(statusScript(m, port, peers), { timeoutMs: 30_000 });
          return parseStatus(m.name, r.stdout);
        } catch (err) {
          return { host: m.name, reachable: false, role: 'unreachable', timeline: null, replicas: [], error: (err as Error).message.split('\n')[0] ?? 'unreachable' };
        }
      }),
    );
}

export interface DbOpOptions {
  file: string;
  acceptNewHostKeys?: boolean;
  json?: boolean;
}

/** A Session on the database hosts and the DbCtx the role-change orchestrators run through. */
export async function openDb(opts: DbOpOptions): Promise<{ platform: Platform; session: Session; ctx: DbCtx }> {
  const platform = loadPlatform(opts.file);
  const members = dbMembers(platform);
  if (members.length === 0) throw new ConfigError(`${opts.file}: no \`database\` section`);
  const session = new Session(members.map((m) => platform.hosts.find((h) => h.name === m.name)!), { parallel: 20, acceptNewHostKeys: opts.acceptNewHostKeys ?? false });
  await session.open();
  const ctx: DbCtx = {
    members,
    port: dbPort(platform.doc.database),
    log: (line) => process.stderr.write(`${line}\n`),
    run: async (host, script, timeoutMs) => {
      const ex = session.executors.get(host)!;
      await ex.connect();
      const r = await ex.runScript(script, { timeoutMs });
      if (r.code !== 0) throw new RtctlError(`${host}: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join('; ') || `exit ${r.code}`}`);
      return r.stdout;
    },
  };
  return { platform, session, ctx };
}

function checkHost(ctx: DbCtx, host: string): void {
  if (!ctx.members.some((m) => m.name === host)) throw new ConfigError(`${host} is not a database host (${ctx.members.map((m) => m.name).join(', ')})`);
}

async function finish(session: Session, platform: Platform, opts: DbOpOptions, extra: Record<string, unknown>): Promise<void> {
  const all = await collectStatus(session, platform);
  process.stdout.write(opts.json ? `${JSON.stringify({ ...extra, hosts: all }, null, 2)}\n` : renderStatus(all));
  if (all.filter((h) => h.role === 'primary').length !== 1) throw new ExitError(1);
}

/** `rtctl db switchover --to HOST`: planned, no data loss. */
export async function dbSwitchoverCommand(host: string, opts: DbOpOptions): Promise<void> {
  const { platform, session, ctx } = await openDb(opts);
  try {
    checkHost(ctx, host);
    const t0 = Date.now();
    await switchover(ctx, host);
    await finish(session, platform, opts, { switchover: { to: host, seconds: (Date.now() - t0) / 1000 } });
  } finally {
    await session.close();
  }
}

/** `rtctl db failover --to HOST [--force]`: the primary is lost. */
export async function dbFailoverCommand(host: string, opts: DbOpOptions & { force?: boolean }): Promise<void> {
  const { platform, session, ctx } = await openDb(opts);
  try {
    checkHost(ctx, host);
    const r = await failover(ctx, host, opts.force ?? false);
    await finish(session, platform, opts, { failover: { to: host, ...r } });
  } finally {
    await session.close();
  }
}

/** `rtctl db rejoin HOST [--reclone]`: an old primary becomes a replica (pg_rewind, or a fresh base backup). */
export async function dbRejoinCommand(host: string, opts: DbOpOptions & { reclone?: boolean }): Promise<void> {
  const { platform, session, ctx } = await openDb(opts);
  try {
    checkHost(ctx, host);
    await rejoin(ctx, host, opts.reclone ?? false);
    await finish(session, platform, opts, { rejoin: { host } });
  } finally {
    await session.close();
  }
}
