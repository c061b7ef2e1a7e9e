import { loadPlatform } from '../config/load.js';
import { ConfigError } from '../errors.js';
import { FORCE_UNLOCK } from '../apply/host-state.js';
import { Session } from './session.js';

export async function unlockCommand(names: string[], opts: { file: string; acceptNewHostKeys: boolean }): Promise<void> {
  const platform = loadPlatform(opts.file);
  const hosts = names.map((n) => platform.hosts.find((h) => h.name === n) ?? (() => { throw new ConfigError(`unknown host "${n}"`); })());
  const session = new Session(hosts, { parallel: 20, acceptNewHostKeys: opts.acceptNewHostKeys });
  try {
    await session.open();
    for (const h of hosts) {
      const ex = session.executors.get(h.name)!;
      await ex.connect();
      const r = await ex.run(['sh', '-c', FORCE_UNLOCK]);
      process.stdout.write(r.stdout.trim() ? `${h.name}: removed lock ${r.stdout.trim()}\n` : `${h.name}: not locked\n`);
    }
  } finally {
    await session.close();
  }
}
