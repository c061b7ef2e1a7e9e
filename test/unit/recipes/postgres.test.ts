import { describe, expect, it } from 'vitest';
import { fakeSecrets, platformFrom } from '../helpers.js';
import { postgres, renderHba, renderSettings, syncStandbyNames, confValue } from '../../../recipes/postgres.js';
import { ValidationError } from '../../../src/errors.js';
import { formatDiagnostics } from '../../../src/config/load.js';
import { parseStatus, renderStatus } from '../../../src/db/status.js';
import { primaryConninfo, slotName } from '../../../src/db/pgsh.js';
import { agentConfig, consul, serviceNames } from '../../../recipes/consul.js';

const HEAD = `version: 1
hosts:
  - { name: h1, address: 198.18.1.11 }
  - { name: h2, address: 198.18.1.12 }
  - { name: h3, address: 198.18.1.13 }
`;
const SECRETS = fakeSecrets({ 'file:.rtctl/secrets/app.pw': 'app-secret-pw' });
const DB = `${HEAD}database:
  primary: h1
  replicas: [h2, h3]
  replication: { mode: sync, standbys: 1 }
  settings:
    shared_buffers: 256MB
    max_connections: 200
    log_connections: true
  roles:
    - { name: app, password: "\${file:.rtctl/secrets/app.pw}" }
  databases:
    - { name: app, owner: app }
  access:
    - { database: app, user: app, from: 198.18.1.0/24 }
`;

/** The diagnostics rtctl prints for a bad platform. */
function problems(yaml: string): string {
  try {
    platformFrom(yaml, SECRETS);
  } catch (e) {
    if (e instanceof ValidationError) return formatDiagnostics(e.diagnostics);
    throw e;
  }
  return '';
}

describe('postgres recipe: rendering', () => {
  const p = platformFrom(DB, SECRETS);

  it('renders the same settings file for every host, with explicit sync standby names', () => {
    expect(renderSettings(p)).toBe(`# Managed by rtctl from platform.yaml (database.settings); local edits are overwritten.
listen_addresses = '*'
port = 5432
ssl = on
ssl_cert_file = '/etc/postgresql/15/main/tls/server.crt'
ssl_key_file = '/etc/postgresql/15/main/tls/server.key'
ssl_ca_file = '/etc/postgresql/15/main/tls/ca.crt'
ssl_min_protocol_version = 'TLSv1.2'
password_encryption = 'scram-sha-256'
wal_level = 'replica'
wal_log_hints = on
max_wal_senders = 10
max_replication_slots = 10
max_slot_wal_keep_size = '4GB'
wal_keep_size = '1GB'
hot_standby = on
hot_standby_feedback = on
synchronous_commit = 'on'
synchronous_standby_names = 'ANY 1 ("h1", "h2", "h3")'
shared_buffers = '256MB'
max_connections = 200
log_connections = on
`);
  });

  it('renders pg_hba with TLS and scram-sha-256 only over the network', () => {
    expect(renderHba(p)).toBe(`# Managed by rtctl from platform.yaml (database.access); local edits are overwritten.
# TYPE    DATABASE     USER         ADDRESS            METHOD
local     all          postgres                        peer
local     all          all                             scram-sha-256
hostssl   all          all          127.0.0.1/32       scram-sha-256
hostssl   replication  replicator   198.18.1.11/32     scram-sha-256
hostssl   postgres     replicator   198.18.1.11/32     scram-sha-256
hostssl   replication  replicator   198.18.1.12/32     scram-sha-256
hostssl   postgres     replicator   198.18.1.12/32     scram-sha-256
hostssl   replication  replicator   198.18.1.13/32     scram-sha-256
hostssl   postgres     replicator   198.18.1.13/32     scram-sha-256
hostssl   app          app          198.18.1.0/24      scram-sha-256
`);
    expect(renderHba(p)).not.toMatch(/\b(md5|trust|password)\b/);
  });

  it('quotes values and names the way postgresql.conf and synchronous_standby_names need', () => {
    expect(confValue("it's")).toBe("'it''s'");
    expect(confValue(false)).toBe('off');
    expect(syncStandbyNames({ primary: 'a', replication: { mode: 'async' } }, ['a', 'b'])).toBe('');
    expect(syncStandbyNames({ primary: 'a', replication: { mode: 'sync', standbys: 2 } }, ['a', 'db-2'])).toBe('ANY 2 ("a", "db-2")');
    expect(slotName('db-2.x')).toBe('rtctl_db_2_x');
    expect(primaryConninfo('10.0.0.1', 5432, 'h2')).toBe('host=10.0.0.1 port=5432 user=replicator passfile=/var/lib/postgresql/.pgpass sslmode=verify-full sslrootcert=/etc/postgresql/15/main/tls/ca.crt application_name=h2 connect_timeout=5');
  });

  it('gives every database host the same role-agnostic resources, staged replicas before the primary', () => {
    const ids = (h: string) => postgres.resources(p, p.hosts.find((x) => x.name === h)!).map((r) => r.id);
    expect(ids('h2')).toEqual(ids('h1'));
    const byId = new Map(postgres.resources(p, p.hosts[0]!).map((r) => [r.id, r]));
    expect(byId.get('file:/etc/postgresql-common/createcluster.d/50-rtctl.conf')?.stage).toBe(20);
    expect(byId.get('exec:postgres-config-replica')?.stage).toBe(22);
    expect(byId.get('exec:postgres-config-primary')?.stage).toBe(23);
    expect(byId.get('exec:postgres-replica')?.stage).toBe(24);
    expect(byId.get('exec:postgres-replica')?.gate?.what).toBe('h1 streaming from the primary');
    // Lowering a hot-standby setting: the replicas' restart waits for the primary's (stage 24, after 23).
    const late = byId.get('exec:postgres-config-replica-late');
    expect(late?.stage).toBe(24);
    expect(late?.type === 'exec' && late.probe).toContain('restart after the primary (lower hot-standby setting)');
    const early = byId.get('exec:postgres-config-replica');
    expect(early?.type === 'exec' && early.run).toContain("f.setting::bigint < s.setting::bigint");
    // The settings file is checked by PostgreSQL itself before it replaces the old one.
    const conf = byId.get('file:/etc/postgresql/15/main/conf.d/50-rtctl.conf');
    expect(conf?.type === 'file' && conf.check).toContain('cp {} "$t/conf.d/50-rtctl.conf"');
    expect(conf?.type === 'file' && conf.check).toContain('runuser -u postgres -- /usr/lib/postgresql/15/bin/postgres --config-file="$t/postgresql.conf" -C data_directory');
  });

  it('keeps passwords out of every file but .pgpass (0600, a secret reference) and out of every run script', () => {
    const rs = postgres.resources(p, p.hosts[1]!);
    const pgpass = rs.find((r) => r.id === 'file:/var/lib/postgresql/.pgpass');
    expect(pgpass).toMatchObject({ mode: '0600', owner: 'postgres', sensitive: true, content: '*:*:*:replicator:${file:.rtctl/secrets/postgres/replicator.password}\n' });
    for (const r of rs) {
      if (r.type === 'file' && r.id !== 'file:/var/lib/postgresql/.pgpass' && !r.path.startsWith('/etc/postgresql/15/main/tls/')) expect(r.content).not.toContain('${file:');
      if (r.type === 'exec') expect(r.run).not.toContain('${file:');
    }
    const role = rs.find((r) => r.id === 'exec:postgres-role-app');
    expect(role).toMatchObject({ stdin: '${file:.rtctl/secrets/app.pw}' });
  });

  it('registers primary and replica in Consul, each with a role check the agent runs, under the postgres service token', () => {
    const artifact = `artifacts:\n  consul: { url: "https://example.invalid/consul", sha256: ${'a'.repeat(64)}, version: 1.8.7 }\n`;
    const withConsul = `${DB.replace('version: 1\n', `version: 1\n${artifact}`)}consul:\n  artifact: consul\n  servers: [h1, h2, h3]\n`;
    const q = platformFrom(withConsul, SECRETS);
    const h2 = q.hosts[1]!;
    const rs = postgres.resources(q, h2);
    const def = (id: string) => {
      const f = rs.find((r) => r.id === `file:/etc/consul.d/service-${id}.json`);
      expect(f).toMatchObject({ mode: '0640', group: 'consul', sensitive: true, stage: 22, notify: ['reload:unit:consul.service'] });
      expect(f && f.type === 'file' && f.check).toContain('consul validate');
      return JSON.parse(f!.type === 'file' ? f!.content : '{}').service;
    };
    expect(def('postgres-primary')).toMatchObject({
      name: 'postgres', tags: ['primary'], port: 5432, address: '198.18.1.12', token: '${file:.rtctl/secrets/consul/service-postgres.token}',
      checks: [{ name: 'postgres is primary', args: ['/usr/local/sbin/rtctl-pg-role', 'primary'], interval: '2s' }],
    });
    // A replica's primary instance is critical by design: it must never be deregistered for that.
    expect(def('postgres-replica').checks[0]).not.toHaveProperty('deregister_critical_service_after');
    expect(def('postgres-replica').tags).toEqual(['replica']);
    // The check logs in as the consul role over the local socket (peer), created on the primary.
    const script = rs.find((r) => r.id === 'file:/usr/local/sbin/rtctl-pg-role');
    expect(script?.type === 'file' && script.content).toContain("psql -X -q -A -t -p 5432 -U consul -d postgres -c 'select pg_is_in_recovery()'");
    expect(renderHba(q)).toContain('local     postgres     consul                          peer');
    expect(renderHba(p)).not.toContain('consul');
    expect(rs.some((r) => r.id === 'exec:postgres-check-role')).toBe(true);
    // The agent on database hosts runs script checks; the service gets its token.
    const acl = consul.resources(q, q.hosts[0]!).find((r) => r.id === 'exec:consul-acl-tokens');
    expect(acl?.type === 'exec' && acl.stdin).toContain("-service-identity=postgres -policy-name=rtctl-svc-postgres");
    expect(serviceNames(q)).toContain('postgres');
    expect(agentConfig(q, h2)).toMatchObject({ enable_local_script_checks: true });
    expect(problems(withConsul.replace('name: app, password', 'name: consul, password'))).toContain('"consul" is managed by rtctl itself');
  });

  it('puts nothing on hosts outside the database section, and nothing at all without one', () => {
    const q = platformFrom(`${HEAD}database:\n  primary: h1\n  replicas: [h2]\n`, SECRETS);
    expect(postgres.resources(q, q.hosts[2]!)).toEqual([]);
    const none = platformFrom(HEAD);
    expect(postgres.resources(none, none.hosts[0]!)).toEqual([]);
    expect(postgres.secrets!(none)).toEqual([]);
  });

  it('asks for a replication password, a CA and one server certificate per database host', () => {
    expect(postgres.secrets!(p).map((s) => s.path)).toEqual([
      '.rtctl/secrets/postgres/replicator.password',
      '.rtctl/secrets/postgres/ca.pem', '.rtctl/secrets/postgres/ca.crt',
      '.rtctl/secrets/postgres/server-h1.pem', '.rtctl/secrets/postgres/server-h1.crt', '.rtctl/secrets/postgres/server-h1.key',
      '.rtctl/secrets/postgres/server-h2.pem', '.rtctl/secrets/postgres/server-h2.crt', '.rtctl/secrets/postgres/server-h2.key',
      '.rtctl/secrets/postgres/server-h3.pem', '.rtctl/secrets/postgres/server-h3.crt', '.rtctl/secrets/postgres/server-h3.key',
    ]);
  });
});

describe('postgres recipe: bad input, at its line', () => {
  it('a replica that is also the primary', () => {
    expect(problems(`${HEAD}database:\n  primary: h1\n  replicas: [h2, h1]\n`)).toBe(`platform.yaml:8:18: database/replicas/1: "h1" is the primary; a host can't also be one of its replicas
  8 |   replicas: [h2, h1]
    |                  ^`);
  });

  it('synchronous replication with no replica', () => {
    expect(problems(`${HEAD}database:\n  primary: h1\n  replication: { mode: sync }\n`)).toBe(`platform.yaml:8:24: database/replication/mode: synchronous replication needs at least one replica (database.replicas is empty)
  8 |   replication: { mode: sync }
    |                        ^`);
  });

  it('more synchronous standbys than replicas', () => {
    expect(problems(`${HEAD}database:\n  primary: h1\n  replicas: [h2]\n  replication: { mode: sync, standbys: 2 }\n`)).toBe(`platform.yaml:9:40: database/replication/standbys: 2 synchronous standbys, but only 1 replica: every commit would wait forever
  9 |   replication: { mode: sync, standbys: 2 }
    |                                        ^`);
  });

  it('an unknown host', () => {
    expect(problems(`${HEAD}database:\n  primary: h9\n  replicas: [h2, hh3]\n`)).toBe(`platform.yaml:7:12: database/primary: unknown host "h9" (did you mean "h1"?)
  7 |   primary: h9
    |            ^
platform.yaml:8:18: database/replicas/1: unknown host "hh3" (did you mean "h3"?)
  8 |   replicas: [h2, hh3]
    |                  ^`);
  });

  it('a missing password secret, and a password in clear', () => {
    expect(problems(`${HEAD}database:\n  primary: h1\n  roles:\n    - { name: app, password: "\${file:.rtctl/secrets/nope.pw}" }\n    - { name: web, password: hunter2 }\n`)).toBe(`platform.yaml:9:30: database/roles/0/password: secret \${file:.rtctl/secrets/nope.pw}: file .rtctl/secrets/nope.pw cannot be read
  9 |     - { name: app, password: "\${file:.rtctl/secrets/nope.pw}" }
    |                              ^
platform.yaml:10:30: database/roles/1/password: must be a secret reference (\${file:PATH} or \${env:NAME}), not a password in clear
  10 |     - { name: web, password: hunter2 }
     |                              ^`);
  });

  it('a database owned by an unknown role, and settings rtctl manages itself', () => {
    expect(problems(`${HEAD}database:\n  primary: h1\n  databases:\n    - { name: app, owner: ap }\n  settings:\n    primary_conninfo: x\n`)).toBe(`platform.yaml:9:27: database/databases/0/owner: unknown role "ap" (owners must be listed in database.roles)
  9 |     - { name: app, owner: ap }
    |                           ^
platform.yaml:11:5: database/settings/primary_conninfo: \`primary_conninfo\` is managed by rtctl
  11 |     primary_conninfo: x
     |     ^`);
  });
});

describe('db status', () => {
  it('parses roles, timelines and lag from the hosts, and warns about two primaries', () => {
    const h1 = parseStatus('h1', 'role=primary\ntimeline=2\nreplica=h2|streaming|quorum|0|\nreplica=h3|catchup|potential|8192|0.25\n');
    const h2 = parseStatus('h2', 'role=replica\nreceiver=streaming|198.18.1.11|2\ntimeline=1\n');
    expect(h1.replicas[1]).toEqual({ name: 'h3', state: 'catchup', syncState: 'potential', lagBytes: 8192, lagSeconds: 0.25 });
    // The timeline it streams (2), not its last checkpoint's (1, until its next restartpoint after a promotion).
    expect(h2).toMatchObject({ role: 'replica', receiver: 'streaming', sender: '198.18.1.11', timeline: 2 });
    expect(parseStatus('h2', 'role=replica\ntimeline=1\n').timeline).toBe(1);
    const h3 = parseStatus('h3', 'role=replica\n');
    expect(renderStatus([h1, h2, h3])).toBe(`HOST  ROLE     TIMELINE  STATE      SYNC       LAG BYTES  LAG SECONDS
h1    primary  2         writable   -          -          -
h2    replica  2         streaming  quorum     0          0.000
h3    replica  -         catchup    potential  8192       0.250
`);
    expect(renderStatus([h1, { ...h2, role: 'primary' }])).toContain('warning: 2 primaries (h1, h2): split brain');
  });
});
