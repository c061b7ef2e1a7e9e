/**
 * PostgreSQL on a 3-host lab (`pg`): h1 primary, h2-h3 synchronous replicas, from bare hosts, with Consul servers
 * on all three (DNS forwarding on) and the example service on h3 writing to `primary.postgres.service.consul`.
 * Streaming verified from both ends, a row replicated, discovery by role, settings drift planned as restart vs
 * reload with replicas first, an interrupted base backup redone cleanly, a switchover and back under the service's
 * traffic, the failover drill with the primary's host powered off, the old primary's rejoin, and a failover
 * refused for a far-behind replica (--force) and done to the up-to-date one.
 * The tests share the lab, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ssh, teardownLab, withLab, type LabInfo } from './helpers/lab.js';
import { cliIn } from './helpers/cli.js';
import { setLink, startHost } from '../../src/lab/index.js';

const LAB = 'pg';
const ROOT = resolve(import.meta.dirname, '../..');
const CONSUL = join(ROOT, '.rtctl/artifacts/consul-1.8.7');
const sha = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
let lab: LabInfo;
let work: string;

const rtctl = cliIn(() => work);

/** Consul's view of postgres (as the management token sees it): `node service-id status`, sorted. */
async function consulRoles(): Promise<string[]> {
  const r = await ssh(lab, 'h3', `sudo sh -c 'curl -s -H "X-Consul-Token: $(cat /etc/consul.d/management.token)" http://127.0.0.1:8500/v1/health/service/postgres' | python3 -c '
import json, sys
for e in json.load(sys.stdin):
    print(e["Node"]["Node"], e["Service"]["ID"], [c["Status"] for c in e["Checks"] if c["ServiceID"]][0])'`);
  return r.stdout.split('\n').filter(Boolean).sort();
}

/** The addresses NAME resolves to through HOST's system resolver (so through Consul DNS), one per line, sorted. */
const lookup = async (host: string, name: string) => (await ssh(lab, host, `getent ahostsv4 ${name} | cut -d" " -f1 | sort -u`)).stdout.trim();

/** One request to the example service on h3 (it counts visits in the database it finds by name). */
async function hello(): Promise<{ status: number; visits: number; body: string }> {
  const url = `http://${lab.hosts.find((x) => x.name === 'h3')!.address}:8080/`;
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    const body = await res.text();
    return { status: res.status, visits: res.ok ? Number((JSON.parse(body) as { visits: number }).visits) : -1, body };
  } catch (e) {
    return { status: 0, visits: -1, body: String(e) };
  }
}

/** `rtctl db status --json` (through the command module: main.ts wiring is the lead's). */
async function dbStatus(): Promise<{ hosts: { host: string; role: string; timeline: number; replicas: { name: string; state: string; syncState: string }[] }[] }> {
  const code = `import(${JSON.stringify(join(ROOT, 'dist/src/cli/db.js'))}).then((m) => m.dbStatusCommand({ file: 'platform.yaml', json: true }))`;
  const r = await execa(process.execPath, ['-e', code], { cwd: work, reject: false });
  expect(r.exitCode, r.stderr).toBe(0);
  return JSON.parse(r.stdout);
}

const sql = async (host: string, q: string, db = 'postgres') => (await ssh(lab, host, `sudo runuser -u postgres -- psql -X -q -A -t -d ${db} -c "${q}"`)).stdout.trim();

/** When the host's postmaster started (ms): unchanged means no restart. */
const startedAt = async (h: string) => new Date(await sql(h, 'select pg_postmaster_start_time()')).getTime();

/**
 * A replica left far behind, then the primary lost: `behind` is cut off while `prim` writes ~40 MB of WAL into
 * `table` (the other replica, the synchronous standby, receives it all), then prim's postmaster is killed before
 * the link comes back.
 */
async function cutOffThenKillPrimary(prim: string, behind: string, table: string): Promise<void> {
  await setLink(LAB, behind, false);
  try {
    await sql(prim, `create table ${table} as select g as id, repeat('x', 100) as v from generate_series(1, 300000) g`);
    await ssh(lab, prim, 'sudo sh -c \'kill -9 "$(head -1 /var/lib/postgresql/15/main/postmaster.pid)"\'');
  } finally {
    await setLink(LAB, behind, true);
  }
}

function writePlatform(settings = 'shared_buffers: 64MB\n    work_mem: 8MB', replication = '{ mode: sync, standbys: 1 }') {
  const p = lab.gateway.replace(/\.1$/, '.');
  writeFileSync(join(work, 'platform.yaml'), `version: 1
name: pg
defaults:
  user: deploy
  become: true
  key: ${lab.dir}/id_ed25519
  known_hosts: ${lab.dir}/known_hosts
hosts:
  - { name: h1, address: ${p}11 }
  - { name: h2, address: ${p}12 }
  - { name: h3, address: ${p}13 }
artifacts:
  consul: { path: ${CONSUL}, sha256: ${sha(CONSUL)}, version: 1.8.7 }
  hello: { path: hello/hello.py, sha256: ${sha(join(work, 'hello/hello.py'))}, version: 1.0.0, filename: hello.py }
consul:
  artifact: consul
  servers: [h1, h2, h3]
  dns_forwarding: true
services:
  - name: hello
    artifact: hello
    command: /usr/bin/python3 {release}/hello.py
    packages: [python3, python3-psycopg2]
    environment:
      # Follows the primary by name: Consul DNS through systemd-resolved.
      HELLO_DATABASE: "host=primary.postgres.service.consul dbname=app user=app password=\${file:.rtctl/secrets/app.password} sslmode=require connect_timeout=2"
    instances:
      - { hosts: [h3], ports: [8080] }
    health: { http: /health, interval: 500ms, timeout: 2s, healthy_threshold: 2, deadline: 60s }
    depends_on: [database]
database:
  primary: h1
  replicas: [h2, h3]
  replication: ${replication}
  settings:
    ${settings}
  roles:
    - { name: app, password: "\${file:.rtctl/secrets/app.password}" }
  databases:
    - { name: app, owner: app }
  access:
    - { database: app, user: app, from: ${p}0/24 }
`);
}

beforeAll(async () => {
  if (!existsSync(CONSUL)) await execa(join(ROOT, 'scripts/fetch-consul'));
  lab = await withLab(LAB, 3);
  work = mkdtempSync(join(tmpdir(), 'rtctl-e2e-pg-'));
  mkdirSync(join(work, '.rtctl/secrets'), { recursive: true });
  mkdirSync(join(work, 'hello'));
  copyFileSync(join(ROOT, 'examples/hello/hello.py'), join(work, 'hello/hello.py'));
  writeFileSync(join(work, '.rtctl/secrets/app.password'), `app-${Math.random().toString(36).slice(2)}`, { mode: 0o600 });
  writePlatform();
}, 120_000);

afterAll(async () => {
  await teardownLab(LAB);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('postgres on a real lab', () => {
  it('refuses a replica that is also the primary, at its line, without touching a host', async () => {
    writeFileSync(join(work, 'bad.yaml'), `version: 1\nhosts:\n  - { name: h1, address: 198.18.1.11 }\ndatabase:\n  primary: h1\n  replicas: [h1]\n`);
    const r = await rtctl(['validate', '-f', 'bad.yaml']);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`bad.yaml:6:14: database/replicas/0: "h1" is the primary; a host can't also be one of its replicas`);
    expect(r.err).not.toContain('    at ');
  });

  it('bootstraps a primary and two streaming replicas from bare hosts', async () => {
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.all).toBe(0);
    // The streaming gate ran on each replica before it was called done.
    expect(r.out).toContain('h2 ~ exec:postgres-replica: wait for h2 streaming from the primary');
    expect(r.out).toContain('h3 ~ exec:postgres-replica: wait for h3 streaming from the primary');
    const st = await dbStatus();
    expect(st.hosts.map((h) => [h.host, h.role])).toEqual([['h1', 'primary'], ['h2', 'replica'], ['h3', 'replica']]);
    expect(st.hosts[0]!.replicas.map((x) => [x.name, x.state, x.syncState])).toEqual([['h2', 'streaming', 'quorum'], ['h3', 'streaming', 'quorum']]);
    for (const h of ['h2', 'h3']) expect(await sql(h, 'select status from pg_stat_wal_receiver')).toBe('streaming');
  }, 400_000);

  it('registers the primary and the replicas in Consul by role; every host resolves them; the service writes through the name', async () => {
    const a = (h: string) => lab.hosts.find((x) => x.name === h)!.address;
    // The role checks run every 2 s: give the replicas' `primary` instances time to turn critical.
    await expect.poll(async () => lookup('h2', 'replica.postgres.service.consul'), { timeout: 30_000, interval: 1_000 })
      .toBe([a('h2'), a('h3')].sort().join('\n'));
    for (const h of ['h1', 'h2', 'h3']) expect(await lookup(h, 'primary.postgres.service.consul')).toBe(a('h1'));
    expect(await consulRoles()).toEqual(['h1 postgres-primary passing', 'h1 postgres-replica critical', 'h2 postgres-primary critical', 'h2 postgres-replica passing', 'h3 postgres-primary critical', 'h3 postgres-replica passing']);
    const r1 = await hello();
    const r2 = await hello();
    expect(r1.status, r1.body).toBe(200);
    expect(r2.visits).toBe(r1.visits + 1);
  }, 120_000);

  it('replicates a row written on the primary to both replicas (synchronous commit)', async () => {
    await sql('h1', "create table drill_rows(id int primary key, v text); insert into drill_rows values (1, 'hello')");
    for (const h of ['h2', 'h3']) expect(await sql(h, 'select v from drill_rows where id = 1')).toBe('hello');
    expect(await sql('h1', 'show synchronous_standby_names')).toBe('ANY 1 ("h1", "h2", "h3")');
  });

  it('has checksums, TLS, scram, no password in clear, .pgpass 0600', async () => {
    for (const h of ['h1', 'h2', 'h3']) {
      expect((await ssh(lab, h, 'sudo /usr/lib/postgresql/15/bin/pg_controldata /var/lib/postgresql/15/main | grep "checksum version"')).stdout).toMatch(/version:\s+1$/);
      expect((await ssh(lab, h, 'sudo stat -c "%a %U" /var/lib/postgresql/.pgpass')).stdout.trim()).toBe('600 postgres');
      expect((await ssh(lab, h, 'sudo grep -rl "password=" /etc/postgresql /var/lib/postgresql/15/main/postgresql.auto.conf; echo rc=$?')).stdout.trim()).toBe('rc=1');
    }
    expect(await sql('h1', "select string_agg(distinct ssl::text, ',') from pg_stat_ssl join pg_stat_replication using (pid)")).toBe('true');
    expect(await sql('h1', "select count(*) from pg_authid where rolpassword is not null and rolpassword not like 'SCRAM-SHA-256$%'")).toBe('0');
    // The app role logs in over TLS with its secret, from a replica host, to the primary.
    const pw = (await import('node:fs')).readFileSync(join(work, '.rtctl/secrets/app.password'), 'utf8');
    const addr = lab.hosts.find((h) => h.name === 'h1')!.address;
    const r = await ssh(lab, 'h2', `PGPASSWORD='${pw}' psql -X -A -t "host=${addr} user=app dbname=app sslmode=require" -c 'select current_user'`);
    expect(r.stdout.trim(), r.stderr).toBe('app');
  });

  it('plans no changes on a second run', async () => {
    const r = await rtctl(['plan', '--detailed-exitcode']);
    expect(r.code, r.all).toBe(0);
    expect(r.out).toContain('No changes. 3 hosts are in sync.');
  });

  it('plans a postmaster setting as a restart and a user setting as a reload, replicas before the primary (the primary first when lowering)', async () => {
    writePlatform('shared_buffers: 96MB\n    work_mem: 16MB');
    const plan = await rtctl(['plan']);
    expect(plan.out).toContain('~ exec:postgres-config-primary  apply settings on the primary (after the replicas); restart (postmaster context): shared_buffers; reload: work_mem');
    expect(plan.out).toContain('~ exec:postgres-config-replica  apply settings on a replica (before the primary); restart (postmaster context): shared_buffers; reload: work_mem');
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.all).toBe(0);
    expect(await sql('h1', 'show shared_buffers')).toBe('96MB');
    expect(await sql('h3', 'show work_mem')).toBe('16MB');
    const [t1, t2, t3] = await Promise.all(['h1', 'h2', 'h3'].map(startedAt));
    expect(t1!).toBeGreaterThan(t2!);
    expect(t1!).toBeGreaterThan(t3!);
    writePlatform('shared_buffers: 96MB\n    work_mem: 32MB');
    const reload = await rtctl(['plan']);
    expect(reload.out).toContain('reload: work_mem');
    expect(reload.out).not.toContain('restart (postmaster context)');
    expect((await rtctl(['apply', '--auto-approve'])).code).toBe(0);
    expect(await startedAt('h1')).toBe(t1);
    expect(await sql('h1', 'show work_mem')).toBe('32MB');
    expect((await rtctl(['plan', '--detailed-exitcode'])).code).toBe(0);

    // Lowering a hot-standby setting is the other way round: the primary first, then the replicas (a replica
    // with a lower max_connections than its primary refuses to start).
    writePlatform('shared_buffers: 96MB\n    work_mem: 32MB\n    max_connections: 90');
    const lower = await rtctl(['plan']);
    expect(lower.out).toContain('~ exec:postgres-config-primary  apply settings on the primary (after the replicas); restart (postmaster context): max_connections');
    expect(lower.out).toContain('~ exec:postgres-config-replica-late  restart a replica after the primary (a lowered hot-standby setting); restart after the primary (lower hot-standby setting): max_connections');
    expect(lower.out).not.toContain('exec:postgres-config-replica  ');
    const r2 = await rtctl(['apply', '--auto-approve']);
    expect(r2.code, r2.all).toBe(0);
    const [u1, u2, u3] = await Promise.all(['h1', 'h2', 'h3'].map(startedAt));
    expect(u1!).toBeLessThan(u2!);
    expect(u1!).toBeLessThan(u3!);
    for (const h of ['h1', 'h2', 'h3']) expect(await sql(h, 'show max_connections')).toBe('90');
    for (const h of ['h2', 'h3']) expect(await sql(h, 'select status from pg_stat_wal_receiver')).toBe('streaming');
    expect((await rtctl(['plan', '--detailed-exitcode'])).code).toBe(0);
  }, 300_000);

  it('switches to asynchronous replication and back with a reload: commits stop waiting for a replica, then wait again', async () => {
    const settings = 'shared_buffers: 96MB\n    work_mem: 32MB\n    max_connections: 90';
    const before = await Promise.all(['h1', 'h2', 'h3'].map(startedAt));
    const states = () => sql('h1', "select string_agg(application_name || '=' || sync_state, ',' order by application_name) from pg_stat_replication");
    expect(await states()).toBe('h2=quorum,h3=quorum');
    writePlatform(settings, '{ mode: async }');
    const plan = await rtctl(['plan']);
    expect(plan.out).toContain('reload: synchronous_standby_names');
    expect(plan.out).not.toContain('restart (postmaster context)');
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.all).toBe(0);
    expect(await sql('h1', 'show synchronous_standby_names')).toBe('');
    await expect.poll(states, { timeout: 10_000, interval: 500 }).toBe('h2=async,h3=async');
    // With both replicas cut off, a commit on the primary returns at once (in sync mode it would wait).
    await sql('h1', 'create table async_rows (id int)');
    await Promise.all(['h2', 'h3'].map((h) => setLink(LAB, h, false)));
    try {
      const w = await ssh(lab, 'h1', 'sudo timeout 10 runuser -u postgres -- psql -X -q -A -t -c "insert into async_rows values (1)"; echo rc=$?');
      expect(w.stdout).toContain('rc=0');
    } finally {
      await Promise.all(['h2', 'h3'].map((h) => setLink(LAB, h, true)));
    }
    await expect.poll(states, { timeout: 30_000, interval: 500 }).toBe('h2=async,h3=async');
    writePlatform(settings);
    const back = await rtctl(['apply', '--auto-approve']);
    expect(back.code, back.all).toBe(0);
    expect(await sql('h1', 'show synchronous_standby_names')).toBe('ANY 1 ("h1", "h2", "h3")');
    await expect.poll(states, { timeout: 10_000, interval: 500 }).toBe('h2=quorum,h3=quorum');
    for (const h of ['h2', 'h3']) expect(await sql(h, 'select count(*) from async_rows')).toBe('1');
    expect(await Promise.all(['h1', 'h2', 'h3'].map(startedAt))).toEqual(before);
    expect((await rtctl(['plan', '--detailed-exitcode'])).code).toBe(0);
  }, 180_000);

  it('a setting PostgreSQL rejects is never installed: `postgres -C` refuses it on the host; file and server stay as they were', async () => {
    const settings = 'shared_buffers: 96MB\n    work_mem: 32MB\n    max_connections: 90';
    const sums = () => Promise.all(['h1', 'h2', 'h3'].map(async (h) => (await ssh(lab, h, 'sudo sha256sum /etc/postgresql/15/main/conf.d/50-rtctl.conf')).stdout.split(' ')[0]));
    const before = await sums();
    writePlatform(`${settings}\n    effective_cache_size: lots`);
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code).toBe(1);
    expect(r.all).toContain('invalid value for parameter "effective_cache_size": "lots"');
    expect(r.all).toContain('/etc/postgresql/15/main/conf.d/50-rtctl.conf left unchanged');
    expect(await sums()).toEqual(before);
    expect(await sql('h1', 'show effective_cache_size')).toBe('4GB');
    for (const h of ['h2', 'h3']) expect(await sql(h, 'select status from pg_stat_wal_receiver')).toBe('streaming');
    writePlatform(settings);
    expect((await rtctl(['plan', '--detailed-exitcode'])).code).toBe(0);
  }, 120_000);

  it('starts an interrupted base backup again, cleanly, on the next apply', async () => {
    // What a killed pg_basebackup leaves: the marker, the server stopped, a half-filled data dir.
    await ssh(lab, 'h3', 'sudo systemctl stop postgresql@15-main && sudo mkdir -p /var/lib/rtctl/postgres && sudo touch /var/lib/rtctl/postgres/basebackup-started && sudo rm -rf /var/lib/postgresql/15/main/base /var/lib/postgresql/15/main/standby.signal');
    const plan = await rtctl(['plan']);
    expect(plan.out).toMatch(/h3[\s\S]*exec:postgres-replica/);
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.all).toBe(0);
    expect(await sql('h3', 'select v from drill_rows where id = 1')).toBe('hello');
    expect(await sql('h3', 'select status from pg_stat_wal_receiver')).toBe('streaming');
    expect((await ssh(lab, 'h3', 'test -e /var/lib/rtctl/postgres/basebackup-started; echo $?')).stdout.trim()).toBe('1');
    expect((await rtctl(['plan', '--detailed-exitcode'])).code).toBe(0);
  }, 300_000);

  /** Inserts ids into sw_rows on HOST, one at a time, until `until` resolves; returns the ids acknowledged. */
  async function writeDuring(host: string, from: number, until: Promise<unknown>): Promise<number[]> {
    let done = false;
    void until.finally(() => { done = true; });
    const acked: number[] = [];
    for (let id = from; !done; id++) {
      const r = await ssh(lab, host, `sudo runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "insert into sw_rows values (${id})"`, { timeoutMs: 10_000 });
      if (r.exitCode === 0) acked.push(id);
      else await new Promise((res) => setTimeout(res, 100));
    }
    return acked;
  }

  /**
   * Requests to the example service every 100 ms until `until` resolves, then until 10 in a row succeed (at most
   * 20 s more). Returns the counts and how long after the end of `until` the last failure was.
   */
  async function trafficDuring(until: Promise<unknown>): Promise<{ total: number; failed: number; lastFailureAfterEndMs: number; tailOk: number }> {
    let end: number | null = null;
    void until.finally(() => { end = Date.now(); });
    let total = 0;
    let failed = 0;
    let lastFailure = 0;
    let tailOk = 0;
    while (end === null || (tailOk < 10 && Date.now() - end < 20_000)) {
      const r = await hello();
      total += 1;
      if (r.status === 200) tailOk += 1;
      else { failed += 1; tailOk = 0; lastFailure = Date.now(); }
      await new Promise((res) => setTimeout(res, 100));
    }
    return { total, failed, lastFailureAfterEndMs: lastFailure === 0 ? 0 : lastFailure - end!, tailOk };
  }

  /**
   * `db switchover --to TO` while rows are written on FROM (ids from FIRST_ID) and the example service takes a
   * request every 100 ms: the switchover succeeds, and the untouched service answers again within 10 s of its end.
   */
  async function switchoverUnderLoad(from: string, to: string, firstId: number) {
    const sw = rtctl(['db', 'switchover', '--to', to]);
    const [acked, traffic] = await Promise.all([writeDuring(from, firstId, sw), trafficDuring(sw)]);
    const result = await sw;
    expect(result.code, result.all).toBe(0);
    console.log(`service through switchover ${from} -> ${to}: ${traffic.total} requests, ${traffic.failed} failed, last failure ${traffic.lastFailureAfterEndMs} ms after the switchover ended`);
    expect(traffic.tailOk).toBeGreaterThanOrEqual(10);
    expect(traffic.lastFailureAfterEndMs).toBeLessThan(10_000);
    return { acked, traffic, result };
  }

  it('switches over to h2 and back to h1 with no lost writes; the service follows the primary by name', async () => {
    await sql('h1', 'create table sw_rows(id int primary key); insert into sw_rows select generate_series(1, 100)');
    const visits = async (h: string) => {
      const v = await sql(h, 'select sum(n) from hello_visits', 'app');
      expect(v).toMatch(/^\d+$/);
      return Number(v);
    };
    const visitsBefore = await visits('h1');
    const { acked: acked1, traffic: t1, result: r1 } = await switchoverUnderLoad('h1', 'h2', 1001);
    // The service was never touched: it found h2 by name and writes there (a replica would refuse the write).
    const a2 = lab.hosts.find((x) => x.name === 'h2')!.address;
    expect(await lookup('h3', 'primary.postgres.service.consul')).toBe(a2);
    expect(await visits('h2')).toBeGreaterThanOrEqual(visitsBefore + t1.total - t1.failed);
    // A clean switchover: the old primary follows the new timeline without pg_rewind.
    expect(r1.err).not.toContain('pg_rewind');
    let st = await dbStatus();
    expect(st.hosts.map((h) => [h.host, h.role])).toEqual([['h1', 'replica'], ['h2', 'primary'], ['h3', 'replica']]);
    expect(st.hosts[1]!.replicas.map((x) => [x.name, x.state])).toEqual([['h1', 'streaming'], ['h3', 'streaming']]);
    expect(st.hosts[1]!.timeline).toBeGreaterThanOrEqual(2);
    expect(acked1.length).toBeGreaterThan(0);
    expect(await sql('h2', `select count(*) from sw_rows where id = any('{${acked1.join(',')}}')`)).toBe(String(acked1.length));
    await sql('h2', 'insert into sw_rows select generate_series(101, 200)');

    const { acked: acked2, result: r2 } = await switchoverUnderLoad('h2', 'h1', 2001);
    expect(r2.err).not.toContain('pg_rewind');
    st = await dbStatus();
    expect(st.hosts.map((h) => [h.host, h.role])).toEqual([['h1', 'primary'], ['h2', 'replica'], ['h3', 'replica']]);
    expect(st.hosts[0]!.replicas.map((x) => [x.name, x.state])).toEqual([['h2', 'streaming'], ['h3', 'streaming']]);
    const all = [...acked1, ...acked2];
    await sql('h1', 'insert into sw_rows values (3001)');
    for (const h of ['h1', 'h2', 'h3']) {
      expect(await sql(h, 'select count(*) from sw_rows where id <= 200')).toBe('200');
      expect(await sql(h, `select count(*) from sw_rows where id = any('{${all.join(',')}}')`)).toBe(String(all.length));
    }
    // Switching to the current primary is refused; a non-database host too.
    expect((await rtctl(['db', 'switchover', '--to', 'h1'])).err).toContain('h1 is already the primary');
  }, 300_000);

  it('runs the failover drill with the primary\'s host powered off (RTO/RPO, RPO 0 in sync mode), then the old primary rejoins with pg_rewind', async () => {
    const r = await rtctl(['drill', 'db-failover', '--fault', 'host', '--rto-max', '60', '--rpo-max', '0', '--json']);
    expect(r.code, r.all).toBe(0);
    const d = JSON.parse(r.out) as { fault: string; oldPrimary: string; newPrimary: string; acknowledged: number; rtoSeconds: number; rpoRows: number; passed: boolean; hosts: { host: string; role: string }[] };
    console.log(`drill (host powered off): ${d.oldPrimary} -> ${d.newPrimary}, ${d.acknowledged} rows acknowledged, RTO ${d.rtoSeconds} s, RPO ${d.rpoRows}`);
    expect(d.fault).toBe('host');
    expect(d.oldPrimary).toBe('h1');
    // The host really is gone: unreachable in the drill's own status, and no ssh.
    expect(d.hosts.find((h) => h.host === 'h1')!.role).toBe('unreachable');
    expect((await ssh(lab, 'h1', 'true', { timeoutMs: 15_000 })).exitCode).not.toBe(0);
    expect(['h2', 'h3']).toContain(d.newPrimary);
    expect(d.rpoRows).toBe(0);
    expect(d.rtoSeconds).toBeGreaterThan(0);
    expect(d.passed).toBe(true);
    // The service found the new primary by name.
    await expect.poll(async () => (await hello()).status, { timeout: 20_000, interval: 500 }).toBe(200);
    // The host comes back: its postgres finds the new primary among its peers and fences itself at start.
    await startHost(LAB, 'h1');
    expect((await ssh(lab, 'h1', 'sudo systemctl start postgresql@15-main; echo rc=$?')).stdout).not.toContain('rc=0');
    expect((await ssh(lab, 'h1', 'sudo test -e /var/lib/rtctl/postgres/fenced; echo $?')).stdout.trim()).toBe('0');
    const rj = await rtctl(['db', 'rejoin', 'h1']);
    expect(rj.code, rj.all).toBe(0);
    console.log(`rejoin: ${rj.err}`);
    const st = await dbStatus();
    const np = st.hosts.find((h) => h.host === d.newPrimary)!;
    expect(st.hosts.find((h) => h.host === 'h1')!.role).toBe('replica');
    expect(np.role).toBe('primary');
    expect(np.replicas.map((x) => x.state)).toEqual(['streaming', 'streaming']);
    expect(await sql('h1', 'select count(*) from rtctl_drill')).toBe(await sql(d.newPrimary, 'select count(*) from rtctl_drill'));
  }, 300_000);

  it('asks for --force to fail over to a replica far behind, and fails over to the up-to-date one', async () => {
    const st0 = await dbStatus();
    const prim = st0.hosts.find((h) => h.role === 'primary')!.host;
    const behind = ['h2', 'h3'].find((h) => h !== prim)!;
    // h1 stays the synchronous standby.
    await cutOffThenKillPrimary(prim, behind, 'far_rows');
    const refused = await rtctl(['db', 'failover', '--to', behind]);
    expect(refused.code).not.toBe(0);
    expect(refused.err).toMatch(new RegExp(`${behind} is \\d+ bytes of WAL behind h1 .*use --to h1, or --force`));
    expect(await sql(behind, 'select pg_is_in_recovery()')).toBe('t');
    const fo = await rtctl(['db', 'failover', '--to', 'h1']);
    expect(fo.code, fo.all).toBe(0);
    expect(await sql('h1', 'select count(*) from far_rows')).toBe('300000');
    const rj = await rtctl(['db', 'rejoin', prim]);
    expect(rj.code, rj.all).toBe(0);
    const st = await dbStatus();
    expect(st.hosts.map((h) => [h.host, h.role])).toEqual([['h1', 'primary'], ['h2', 'replica'], ['h3', 'replica']]);
    expect(st.hosts[0]!.replicas.map((x) => x.state)).toEqual(['streaming', 'streaming']);
    // It could follow h1 because h1, a replica until then, had kept the WAL it needed (wal_keep_size).
    expect(await sql(behind, 'select count(*) from far_rows')).toBe('300000');
  }, 300_000);

  it('re-clones a replica from the primary with db rejoin --reclone (a fresh base backup), streaming again', async () => {
    // A file only the old data dir has: a fresh copy from h1 doesn't.
    await ssh(lab, 'h3', 'sudo runuser -u postgres -- touch /var/lib/postgresql/15/main/rtctl-old-copy');
    const r = await rtctl(['db', 'rejoin', 'h3', '--reclone']);
    expect(r.code, r.all).toBe(0);
    expect(r.err).toContain('fresh base backup of h3 from h1');
    expect(await sql('h3', 'select status from pg_stat_wal_receiver')).toBe('streaming');
    expect(await sql('h3', 'select count(*) from far_rows')).toBe('300000');
    expect((await ssh(lab, 'h3', 'sudo test -e /var/lib/postgresql/15/main/rtctl-old-copy; echo $?')).stdout.trim()).toBe('1');
    expect((await ssh(lab, 'h3', 'sudo test -e /var/lib/rtctl/postgres/basebackup-started; echo $?')).stdout.trim()).toBe('1');
    const st = await dbStatus();
    expect(st.hosts[0]!.replicas.map((x) => [x.name, x.state])).toEqual([['h2', 'streaming'], ['h3', 'streaming']]);
  }, 300_000);

  it('fails over with --force to a replica far behind: the writes it lacked are lost and reported, the replica that had them is rewound to follow', async () => {
    // h2 is the synchronous standby and has every write h3 lacks.
    await cutOffThenKillPrimary('h1', 'h3', 'forced_rows');
    const fo = await rtctl(['db', 'failover', '--to', 'h3', '--force', '--json']);
    expect(fo.code, fo.all).toBe(0);
    const j = JSON.parse(fo.out) as { failover: { to: string; fenced: string[]; lostBytes: number }; hosts: { host: string; role: string; replicas: { name: string; state: string }[] }[] };
    console.log(`forced failover to h3: ${j.failover.lostBytes} bytes of WAL given up; ${fo.err.trim().split('\n').join(' | ')}`);
    expect(j.failover.lostBytes).toBeGreaterThan(16 * 1024 * 1024);
    expect(fo.err).toContain(`warning: h3 is ${j.failover.lostBytes} bytes of WAL behind h2: those writes are lost`);
    expect(j.failover.fenced).toEqual(['h1']);
    // h2 had WAL past the point where h3's timeline forks: it can't just follow, failover rewinds it.
    expect(fo.err).toContain('h2 does not stream after re-pointing');
    expect(j.hosts.find((h) => h.host === 'h3')!.role).toBe('primary');
    expect(j.hosts.find((h) => h.host === 'h2')!.role).toBe('replica');
    for (const h of ['h2', 'h3']) expect(await sql(h, "select to_regclass('forced_rows') is null")).toBe('t');
    expect(await sql('h3', 'select count(*) from far_rows')).toBe('300000');
    const rj = await rtctl(['db', 'rejoin', 'h1']);
    expect(rj.code, rj.all).toBe(0);
    expect(await sql('h1', "select to_regclass('forced_rows') is null")).toBe('t');
    const st = await dbStatus();
    expect(st.hosts.map((h) => [h.host, h.role])).toEqual([['h1', 'replica'], ['h2', 'replica'], ['h3', 'primary']]);
    expect(st.hosts[2]!.replicas.map((x) => [x.name, x.state])).toEqual([['h1', 'streaming'], ['h2', 'streaming']]);
  }, 300_000);

  it('plans no changes after the role changes (the plan does not undo them)', async () => {
    const r = await rtctl(['plan', '--detailed-exitcode']);
    expect(r.code, r.all).toBe(0);
  }, 120_000);

  it('keeps generated secrets on the operator side, 0600', () => {
    expect((statSync(join(work, '.rtctl/secrets/postgres/replicator.password')).mode & 0o777).toString(8)).toBe('600');
    expect((statSync(join(work, '.rtctl/secrets/postgres/ca.pem')).mode & 0o777).toString(8)).toBe('600');
  });
});
