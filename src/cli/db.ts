/**
 * `rtctl db …`: operations on the PostgreSQL cluster of the `database` section. Thin: connects through the
 * Session's executors and runs the pure scripts of src/db/.
 */
import { loadPlatform } from '../config/load.js';
import { ConfigError, ExitError } from '../errors.js';
import { dbMembers, dbPort } from '../db/pgsh.js';
import { parseStatus, renderStatus, statusScript, type DbHostStatus } from '../db/status.js';
import { Session } from './session.js';

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
    const port = dbPort(platform.doc.database);
    const all: DbHostStatus[] = await Promise.all(
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
    process.stdout.write(opts.json ? `${JSON.stringify({ hosts: all }, null, 2)}\n` : renderStatus(all));
    if (all.filter((h) => h.role === 'primary').length !== 1) throw new ExitError(1);
  } finally {
    await session.close();
  }
}
