import { loadPlatform } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { FORCE_UNLOCK } from '../apply/host-state.js';
import { ConsulLock, LOCK_KEY } from '../apply/consul-lock.js';
import type { Executor } from '../executors/types.js';
import { consulServerNames } from './plan.js';
import { Session } from './session.js';

/**
 * `rtctl unlock [HOST…] [--cluster RUN]`: removes the apply locks a dead rtctl left: the per-host ones on the
 * hosts named, and with `--cluster`, the platform-wide one in Consul if that run holds it.
 */
export async function unlockCommand(names: string[], opts: { file: string; cluster?: string; acceptNewHostKeys: boolean }): Promise<void> {
  const platform = loadPlatform(opts.file);
  if (names.length === 0 && opts.cluster === undefined) throw new ConfigError('name the hosts to unlock, or --cluster RUN for the lock in Consul');
  const byName = (n: string) => platform.hosts.find((h) => h.name === n) ?? (() => { throw new ConfigError(`unknown host "${n}"`); })();
  const hosts = names.map(byName);
  const servers = opts.cluster !== undefined ? consulServerNames(platform) : [];
  if (opts.cluster !== undefined && servers.length === 0) throw new ConfigError('--cluster: this platform has no Consul servers, so there is no cluster lock');
  const all = [...new Map([...hosts, ...servers.map(byName)].map((h) => [h.name, h])).values()];
  const session = new Session(all, { parallel: 20, acceptNewHostKeys: opts.acceptNewHostKeys });
  try {
    await session.open();
    for (const h of hosts) {
      const ex = session.executors.get(h.name)!;
      await ex.connect();
      const r = await ex.run(['sh', '-c', FORCE_UNLOCK]);
      process.stdout.write(r.stdout.trim() ? `${h.name}: removed lock ${r.stdout.trim()}\n` : `${h.name}: not locked\n`);
    }
    if (opts.cluster !== undefined) {
      const holder = await ConsulLock.forceRelease(servers.map((n) => session.executors.get(n)).filter((e): e is Executor => !!e), opts.cluster);
      process.stdout.write(holder
        ? `consul: removed lock ${LOCK_KEY} of run ${holder.run ?? '?'} (${holder.by ?? 'unknown'}, pid ${holder.pid ?? '?'}, since ${holder.since ?? '?'})\n`
        : `consul: not locked\n`);
    }
  } finally {
    await session.close();
  }
}
