import { describe, expect, it } from 'vitest';
import { bestReplica, checkTarget, rejoin, demoteScript, failover, lsnToBigInt, parseKv, parseProbe, promoteScript, recloneScript, rejoinScript, repointScript, switchover, type DbCtx, type Probe } from '../../../src/db/switchover.js';

const members = [
  { name: 'h1', address: '10.0.0.11', configuredPrimary: true },
  { name: 'h2', address: '10.0.0.12', configuredPrimary: false },
  { name: 'h3', address: '10.0.0.13', configuredPrimary: false },
];
const rep = (host: string, lsn: string): Probe => ({ host, reachable: true, role: 'replica', lsn, replay: lsn });

describe('db role changes: pure parts', () => {
  it('orders LSNs numerically', () => {
    expect(lsnToBigInt('0/3000060')).toBe(0x3000060n);
    expect(lsnToBigInt('1/0')).toBe(1n << 32n);
    expect(lsnToBigInt('1/0') > lsnToBigInt('0/FFFFFFFF')).toBe(true);
    expect(() => lsnToBigInt('nope')).toThrow('not an LSN');
  });

  it('parses probes and key=value output', () => {
    expect(parseProbe('h2', 'role=replica\nlsn=0/5000000\nreplay=0/4000000\n')).toEqual({ host: 'h2', reachable: true, role: 'replica', lsn: '0/5000000', replay: '0/4000000' });
    expect(parseKv('checkpoint=0/30000D8\nstate=shut down\n')).toEqual({ checkpoint: '0/30000D8', state: 'shut down' });
  });

  it('picks the best replica and refuses a far-behind target without --force', () => {
    const probes = [{ host: 'h1', reachable: false, role: 'unreachable', lsn: null, replay: null }, rep('h2', '0/1000000'), rep('h3', '0/9000000')];
    expect(bestReplica(probes)).toBe('h3');
    expect(() => checkTarget(probes, 'h2', false)).toThrow('h2 is 134217728 bytes of WAL behind h3 (received 0/1000000 vs 0/9000000): failing over to it loses those writes; use --to h3, or --force');
    expect(checkTarget(probes, 'h2', true).behindBytes).toBe(0x8000000n);
    expect(checkTarget([rep('h2', '0/1000000'), rep('h3', '0/1000100')], 'h2', false).best).toBe('h3');
    expect(() => checkTarget(probes, 'h1', false)).toThrow('h1 is not a running replica (unreachable)');
  });

  it('keeps each replica its explicit application_name and slot', () => {
    const s = repointScript({ port: 5432 }, 'h3', '10.0.0.12');
    expect(s).toContain("alter system set primary_conninfo = 'host=10.0.0.12 port=5432 user=replicator passfile=/var/lib/postgresql/.pgpass sslmode=verify-full sslrootcert=/etc/postgresql/15/main/tls/ca.crt application_name=h3 connect_timeout=5'");
    expect(s).toContain("alter system set primary_slot_name = 'rtctl_h3'");
    expect(demoteScript({ port: 5432 }, 'h1', '10.0.0.12')).toContain("write_standby 'host=10.0.0.12 port=5432");
    expect(rejoinScript({ port: 5432 }, 'h1', '10.0.0.12')).toMatch(/pg_rewind -D "\$D" --source-server='host=10\.0\.0\.12 .*application_name=h1 connect_timeout=5 dbname=postgres' --config-file=\$C\/postgresql\.conf/);
    expect(rejoinScript({ port: 5432 }, 'h1', '10.0.0.12')).toContain('rm -f /var/lib/rtctl/postgres/fenced');
    // --reclone: a fresh base backup through the host's slot instead of pg_rewind, then unfence.
    const rc = recloneScript({ port: 5432 }, 'h1', '10.0.0.12');
    expect(rc).toMatch(/base_backup 'host=10\.0\.0\.12 .*application_name=h1 connect_timeout=5' rtctl_h1\nrm -f \/var\/lib\/rtctl\/postgres\/fenced/);
    expect(rc).not.toContain('pg_rewind');
    expect(promoteScript(['rtctl_h1', 'rtctl_h3'])).toContain('for s in rtctl_h1 rtctl_h3; do');
  });
});

/** A fake cluster answering the orchestrators' scripts by what they contain. */
function fakeCtx(roles: Record<string, string>, lsns: Record<string, string>) {
  const calls: string[] = [];
  const ctx: DbCtx = {
    members,
    port: 5432,
    log: () => undefined,
    run: async (host, script) => {
      if (script.includes('r=$(pg_role); echo "role=$r"')) {
        if (roles[host] === 'unreachable') throw new Error('connect timeout');
        return `role=${roles[host]}\nlsn=${lsns[host] ?? ''}\n`;
      }
      const what = script.includes('pg_promote') ? 'promote' : script.includes('pg_rewind') ? 'rewind' : script.includes('fenced by rtctl') ? 'fence' : script.includes('Latest checkpoint location') ? 'stop' : script.includes('pg_last_wal_replay_lsn()') ? 'wait' : script.includes('alter system set primary_conninfo') ? 'repoint' : script.includes('write_standby \'') ? 'demote' : 'other';
      calls.push(`${host}:${what}`);
      if (what === 'stop') return 'checkpoint=0/30000D8\nstate=shut down\n';
      return 'ok\n';
    },
  };
  return { ctx, calls };
}

describe('db role changes: orchestration order', () => {
  it('switchover: stop the primary, wait for the target, promote, re-point, demote', async () => {
    const { ctx, calls } = fakeCtx({ h1: 'primary', h2: 'replica', h3: 'replica' }, { h1: '0/3000000', h2: '0/3000000', h3: '0/3000000' });
    await switchover(ctx, 'h2');
    expect(calls).toEqual(['h1:stop', 'h2:wait', 'h2:promote', 'h3:repoint', 'h1:demote']);
    await expect(switchover(ctx, 'h1')).rejects.toThrow('h1 is already the primary');
  });

  it('failover: refuses while a primary runs, fences a reachable old primary, refuses a far-behind target', async () => {
    await expect(failover(fakeCtx({ h1: 'primary', h2: 'replica', h3: 'replica' }, {}).ctx, 'h2', false)).rejects.toThrow('h1 is a running primary: use rtctl db switchover --to h2');
    const f = fakeCtx({ h1: 'down', h2: 'replica', h3: 'replica' }, { h2: '0/3000000', h3: '0/3000000' });
    expect(await failover(f.ctx, 'h3', false)).toEqual({ fenced: ['h1'], unreachable: [], lostBytes: 0 });
    expect(f.calls).toEqual(['h1:fence', 'h3:promote', 'h2:repoint']);
    const u = fakeCtx({ h1: 'unreachable', h2: 'replica', h3: 'replica' }, { h2: '0/3000000', h3: '1/0' });
    await expect(failover(u.ctx, 'h2', false)).rejects.toThrow('use --to h3, or --force');
    // Forced: the WAL h2 lacks (1/0 - 0/3000000) is reported as lost, and said on the log.
    const logged: string[] = [];
    expect(await failover({ ...u.ctx, log: (l) => logged.push(l) }, 'h2', true)).toEqual({ fenced: [], unreachable: ['h1'], lostBytes: 0x1_0000_0000 - 0x300_0000 });
    expect(logged[0]).toBe(`warning: h2 is ${0x1_0000_0000 - 0x300_0000} bytes of WAL behind h3: those writes are lost; h3 is rewound (pg_rewind) if it can't follow h2`);
  });

  it('rejoin: pg_rewind by default; when that fails, says how to copy the host afresh; --reclone copies it', async () => {
    const { ctx, calls } = fakeCtx({ h1: 'fenced', h2: 'primary', h3: 'replica' }, {});
    await rejoin(ctx, 'h1');
    expect(calls).toEqual(['h2:other', 'h1:rewind']);
    const failing: DbCtx = { ...ctx, run: async (host, script, ms) => { if (script.includes('pg_rewind -D')) throw new Error('h1: h1 is not streaming from 10.0.0.12'); return ctx.run(host, script, ms); } };
    await expect(rejoin(failing, 'h1')).rejects.toThrow('h1: h1 is not streaming from 10.0.0.12; if h1 lacks WAL the primary no longer keeps, copy it afresh: rtctl db rejoin h1 --reclone');
    calls.length = 0;
    await rejoin(ctx, 'h1', true);
    expect(calls).toEqual(['h2:other', 'h1:other']);
  });
});
