/**
 * `rtctl status`: the Consul cluster as its servers see it — members, the leader and raft voters, and every
 * check that is not passing. One SSH round trip to the first server that answers; the management token is
 * read on the server and never leaves it.
 */
import { loadPlatform } from '../config/load.js';
import { ConfigError, ExitError, RtctlError } from '../errors.js';
import { consulDoc, servers } from '../../recipes/consul.js';
import { Session } from './session.js';

export interface ClusterStatus {
  server: string;
  leader: string | null;
  members: { node: string; address: string; status: string; type: string }[];
  voters: { node: string; state: string; voter: boolean }[];
  failing: { node: string; check: string; service: string; status: string; output: string }[];
}

const SCRIPT = `export PATH=/opt/consul/current:$PATH
[ -r /etc/consul.d/management.token ] && export CONSUL_HTTP_TOKEN_FILE=/etc/consul.d/management.token
echo '@members'; consul members 2>&1
echo '@peers'; consul operator raft list-peers 2>&1
echo '@checks'; curl -sf -H "X-Consul-Token: $(cat /etc/consul.d/management.token 2>/dev/null)" http://127.0.0.1:8500/v1/health/state/any 2>&1
echo; echo '@end'`;

/** Parses the script's output (pure). */
export function parseStatus(server: string, out: string): ClusterStatus {
  const section = (name: string) => (out.split(`@${name}\n`)[1] ?? '').split(/\n@\w+\n?/)[0] ?? '';
  const rows = (text: string) => text.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/)).filter((c) => c.length >= 4);
  const members = rows(section('members')).map(([node, address, status, type]) => ({ node: node!, address: address!, status: status!, type: type! }));
  const voters = rows(section('peers')).map((c) => ({ node: c[0]!, state: c[3]!, voter: c[4] === 'true' }));
  let checks: { Node: string; CheckID: string; ServiceName: string; Status: string; Output: string }[] = [];
  try {
    checks = JSON.parse(section('checks').trim() || '[]');
  } catch {
    checks = [];
  }
  return {
    server,
    leader: voters.find((v) => v.state === 'leader')?.node ?? null,
    members,
    voters,
    failing: checks.filter((c) => c.Status !== 'passing').map((c) => ({ node: c.Node, check: c.CheckID, service: c.ServiceName, status: c.Status, output: c.Output.trim().split('\n')[0] ?? '' })),
  };
}

export function renderStatus(s: ClusterStatus): string {
  const lines = [`Consul (asked ${s.server}): leader ${s.leader ?? 'NONE'}`, '', 'members:'];
  for (const m of s.members) lines.push(`  ${m.node.padEnd(10)} ${m.address.padEnd(22)} ${m.type.padEnd(7)} ${m.status}`);
  lines.push('', 'raft:');
  for (const v of s.voters) lines.push(`  ${v.node.padEnd(10)} ${v.state.padEnd(9)} ${v.voter ? 'voter' : 'non-voter'}`);
  lines.push('', s.failing.length ? 'failing checks:' : 'failing checks: none');
  for (const f of s.failing) lines.push(`  ${f.node.padEnd(10)} ${f.check} (${f.service || 'node'}) ${f.status}: ${f.output}`);
  return lines.join('\n');
}

export async function statusCommand(opts: { file: string; parallel: number; acceptNewHostKeys: boolean; json?: boolean }): Promise<void> {
  const platform = loadPlatform(opts.file);
  if (!consulDoc(platform)) throw new ConfigError(`${opts.file}: no \`consul\` section: nothing to report`);
  const session = new Session(servers(platform), { parallel: opts.parallel, acceptNewHostKeys: opts.acceptNewHostKeys });
  const errors: string[] = [];
  try {
    await session.open();
    for (const h of session.hosts) {
      try {
        const ex = session.executors.get(h.name)!;
        await ex.connect();
        const r = await ex.runScript(SCRIPT);
        const st = parseStatus(h.name, r.stdout);
        if (st.members.length === 0) throw new RtctlError(`${h.name}: the Consul agent does not answer (${r.stdout.split('\n')[1] ?? ''})`);
        process.stdout.write(opts.json ? `${JSON.stringify({ format_version: '1', ...st, unreachable: errors }, null, 2)}\n` : `${renderStatus(st)}\n`);
        if (errors.length && !opts.json) process.stdout.write(`\nunreachable servers:\n  ${errors.join('\n  ')}\n`);
        const down = st.members.filter((m) => m.status !== 'alive').length;
        if (!st.leader || down > 0 || st.failing.length > 0 || errors.length > 0) throw new ExitError(2);
        return;
      } catch (err) {
        if (err instanceof ExitError) throw err;
        errors.push(err instanceof Error ? err.message : String(err));
      }
    }
    throw new RtctlError(`no Consul server answered:\n  ${errors.join('\n  ')}`);
  } finally {
    await session.close();
  }
}
