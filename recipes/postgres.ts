/**
 * The postgres recipe: a PostgreSQL primary with streaming replicas from Debian's packages (docs/postgres.md).
 *
 * Roles come from the hosts, not from platform.yaml: every database host gets the SAME resources, and each
 * role-dependent exec probes the host's current role (`pg_role` in src/db/pgsh.ts) and reports "ok" when the
 * work isn't its business (the replica bootstrap on the current primary, slot management on a replica, …).
 * `primary:` only says where the cluster is created the first time. So after `rtctl db failover`, `rtctl plan`
 * doesn't try to undo it; role changes are the db commands' job (src/db/).
 *
 * Stages (global across recipes; postgres comes after Consul's):
 *   20 createcluster.d drop-in (before the package, so the package creates no cluster without checksums)
 *   21 package, cluster (created with --data-checksums, or adopted)
 *   22 config files, TLS, .pgpass, fence check; reload/restart replicas
 *   23 reload/restart the primary; replication role, slots, service roles and databases on the primary
 *   24 replica bootstrap (pg_basebackup -R -S), gated on streaming seen from both ends
 */
import { createHash } from 'node:crypto';
import type { Host, Platform } from '../src/model/platform.js';
import { makeId, type ExecResource, type Resource } from '../src/model/resources.js';
import type { Problem } from '../src/config/validate.js';
import { findRefs } from '../src/secrets.js';
import {
  BASEBACKUP_MARKER, BIN_DIR, CONF_DIR, DATA_DIR, dbMembers, dbPort, FENCE_MARKER, PG_VERSION, PGPASS, pgLib, primaryConninfo,
  REPLICATION_PASSWORD, REPLICATION_USER, SECRETS_DIR, shq, slotName, sqlId, sqlq, STATE_DIR, TLS_DIR, UNIT, WRITE_STANDBY_CONFIG,
} from '../src/db/pgsh.js';
import type { DatabaseDoc } from '../src/model/sections/database.js';
import { caSecrets, leafSecrets } from './ca.js';
import { serviceDefinition, type ServiceRegistration } from './consul.js';
import { hint } from '../src/util/hint.js';
import type { GeneratedSecret, Recipe } from './types.js';

export const STAGE = { prepare: 20, install: 21, config: 22, primary: 23, replica: 24 } as const;
export const SETTINGS_FILE = `${CONF_DIR}/conf.d/50-rtctl.conf`;
export const HBA_FILE = `${CONF_DIR}/pg_hba.conf`;
/**
 * PostgreSQL's own check of a candidate settings file, before it replaces the old one: a copy of the cluster's
 * config dir with the candidate in its place, parsed by `postgres -C` (which reads every config file, validates
 * each value and exits non-zero on an error, also while the server runs). pg_hba.conf has no such checker in
 * PostgreSQL 15: it is checked after the reload, through pg_hba_file_rules (the running server keeps its old rules).
 */
export const SETTINGS_CHECK = `t=$(mktemp -d) && cp -a ${CONF_DIR}/. "$t"/ && cp {} "$t/conf.d/50-rtctl.conf" && chown -R postgres:postgres "$t" && runuser -u postgres -- ${BIN_DIR}/postgres --config-file="$t/postgresql.conf" -C data_directory >/dev/null; rc=$?; rm -rf "$t"; exit $rc`;
export const FENCE_SCRIPT = '/usr/local/sbin/rtctl-pg-fence';
export const FENCE_DROPIN_DIR = `/etc/systemd/system/${UNIT}.service.d`;
export const FENCE_DROPIN = `${FENCE_DROPIN_DIR}/rtctl-fence.conf`;
/** The database role the Consul agent's role check logs in as (peer authentication, no password, no privileges). */
export const CHECK_ROLE = 'consul';
export const ROLE_CHECK_SCRIPT = '/usr/local/sbin/rtctl-pg-role';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

function exec(name: string, stage: number, fields: Omit<ExecResource, 'type' | 'id' | 'name' | 'stage'>): ExecResource {
  return { type: 'exec', id: makeId('exec', name), name, stage, ...fields };
}

/** A postgresql.conf value: numbers bare, booleans on/off, strings single-quoted. */
export function confValue(v: string | number | boolean): string {
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v === 'number') return String(v);
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** `ANY n ("h1", "h2", …)` over every database host: the primary never streams to itself, so this is the same on every host. */
export function syncStandbyNames(d: DatabaseDoc, members: string[]): string {
  if (d.replication?.mode !== 'sync') return '';
  return `ANY ${d.replication.standbys ?? 1} (${members.map((m) => `"${m}"`).join(', ')})`;
}

/** conf.d/50-rtctl.conf: the same on every database host (role-agnostic). One `name = value` line per setting. */
export function renderSettings(p: Platform): string {
  const d = p.doc.database!;
  const members = dbMembers(p).map((m) => m.name);
  const base: Record<string, string | number | boolean> = {
    listen_addresses: '*',
    port: dbPort(d),
    ssl: true,
    ssl_cert_file: `${TLS_DIR}/server.crt`,
    ssl_key_file: `${TLS_DIR}/server.key`,
    ssl_ca_file: `${TLS_DIR}/ca.crt`,
    ssl_min_protocol_version: 'TLSv1.2',
    password_encryption: 'scram-sha-256',
    wal_level: 'replica',
    // pg_rewind (rtctl db rejoin) needs hint bits WAL-logged or data checksums; both are on.
    wal_log_hints: true,
    max_wal_senders: 10,
    max_replication_slots: 10,
    max_slot_wal_keep_size: '4GB',
    // Slots live on the primary only: after a failover the promoted replica must still hold the WAL the other,
    // lagging replicas need to follow it (found in the lab: a replica cut off for ~48 MB of WAL could not stream
    // from the new primary, whose restartpoints had removed the segment). Standbys keep this much too.
    wal_keep_size: '1GB',
    hot_standby: true,
    hot_standby_feedback: true,
    synchronous_commit: 'on',
    synchronous_standby_names: syncStandbyNames(d, members),
  };
  const all = { ...base, ...(d.settings ?? {}) };
  const lines = Object.entries(all).map(([k, v]) => `${k} = ${confValue(v)}`);
  return `# Managed by rtctl from platform.yaml (database.settings); local edits are overwritten.\n${lines.join('\n')}\n`;
}

/** pg_hba.conf: peer for local postgres, TLS + scram-sha-256 for everything over the network. */
export function renderHba(p: Platform): string {
  const d = p.doc.database!;
  const lines = [
    '# Managed by rtctl from platform.yaml (database.access); local edits are overwritten.',
    '# TYPE    DATABASE     USER         ADDRESS            METHOD',
    'local     all          postgres                        peer',
    ...(p.doc.consul !== undefined ? [`local     postgres     ${CHECK_ROLE.padEnd(12)}                    peer`] : []),
    'local     all          all                             scram-sha-256',
    'hostssl   all          all          127.0.0.1/32       scram-sha-256',
  ];
  for (const m of dbMembers(p)) {
    lines.push(`hostssl   replication  ${REPLICATION_USER}   ${`${m.address}/32`.padEnd(18)} scram-sha-256`);
    // Replicas and the db commands find the primary, and pg_rewind reads it, over ordinary connections.
    lines.push(`hostssl   postgres     ${REPLICATION_USER}   ${`${m.address}/32`.padEnd(18)} scram-sha-256`);
  }
  for (const a of d.access ?? []) lines.push(`hostssl   ${a.database.padEnd(12)} ${a.user.padEnd(12)} ${a.from.padEnd(18)} scram-sha-256`);
  return `${lines.join('\n')}\n`;
}

const createclusterConf = `# Managed by rtctl: no cluster on package install; rtctl creates 15/main with data checksums.
create_main_cluster = false
initdb_options = '--data-checksums'
`;

/** ExecStartPre of the cluster's unit: an old primary refuses to start while a peer of the same cluster is primary. */
export function renderFenceScript(p: Platform, host: Host): string {
  const members = dbMembers(p);
  const me = members.find((m) => m.name === host.name)!;
  const lib = pgLib({ port: dbPort(p.doc.database), self: host.name, configuredPrimary: me.configuredPrimary, peers: members.filter((m) => m.name !== host.name).map((m) => m.address) });
  return `#!/bin/sh
# Managed by rtctl. Run before ${UNIT} starts: a host fenced by \`rtctl db failover\`, or an old primary that
# finds another primary of the same cluster (same system identifier) among its peers, refuses to start, so a
# returning old primary can't take writes (split brain). \`rtctl db rejoin ${host.name}\` turns it into a replica.
${lib}
if [ -e ${FENCE_MARKER} ]; then echo "rtctl: ${host.name} is fenced (an old primary): run rtctl db rejoin ${host.name}" >&2; exit 1; fi
[ -e "$D/standby.signal" ] && exit 0
[ -f "$D/PG_VERSION" ] || exit 0
mine=$($B/pg_controldata "$D" 2>/dev/null | sed -n 's/^Database system identifier: *//p')
for a in $PEERS; do
  if [ "$(rq "$a" 'select pg_is_in_recovery()')" = f ] && [ "$(rq "$a" 'select system_identifier from pg_control_system()')" = "$mine" ]; then
    mkdir -p ${STATE_DIR}; echo "peer $a was primary at $(date -u +%FT%TZ)" > ${FENCE_MARKER}
    echo "rtctl: $a is the primary of this cluster now; ${host.name} fenced itself: run rtctl db rejoin ${host.name}" >&2
    exit 1
  fi
done
exit 0
`;
}

const fenceDropin = `# Managed by rtctl: an old primary must not come back as a second primary.
[Service]
ExecStartPre=${FENCE_SCRIPT}
`;

/** For the Consul health checks (run by the agent as the consul user): exit 0 when this host has ROLE (primary | replica) now. */
export function renderRoleCheck(port: number): string {
  return `#!/bin/sh
# Managed by rtctl: Consul check for the postgres service; exit 0 = this host is the ROLE given as $1.
r=$(psql -X -q -A -t -p ${port} -U ${CHECK_ROLE} -d postgres -c 'select pg_is_in_recovery()' 2>/dev/null)
case "$1:$r" in primary:f|replica:t) echo "$1"; exit 0 ;; *) echo "not $1 (in recovery: \${r:-down})"; exit 2 ;; esac
`;
}

/** Two Consul service instances per host (`primary.postgres` and `replica.postgres`); only the one matching the host's role now passes its check. */
export function consulRegistrations(host: Host, port: number): ServiceRegistration[] {
  return (['primary', 'replica'] as const).map((role) => ({
    id: `postgres-${role}`,
    name: 'postgres',
    port,
    tags: [role],
    meta: { host: host.name },
    check: { args: [ROLE_CHECK_SCRIPT, role], name: `postgres is ${role}`, interval: '2s', timeout: '2s' },
  }));
}

/**
 * Settings a standby must have at least as high as its primary's (PostgreSQL's "hot standby parameters"):
 * raising them restarts replicas first, LOWERING them must restart the primary first, else a replica refuses to
 * start ("… is a lower setting than on the primary server").
 */
export const HOT_STANDBY_PARAMS = ['max_connections', 'max_prepared_transactions', 'max_locks_per_transaction', 'max_wal_senders', 'max_worker_processes'];

/**
 * Settings that will change: the desired file vs the one on the host, each classified by pg_settings.context.
 * `replica-late` (stage 24) reports only a replica's restart that must wait for the primary's (a lowered hot
 * standby setting); `replica` (stage 22) leaves that restart out.
 */
function settingsProbe(lib: string, desired: string, hbaSha: string, when: 'replica' | 'primary' | 'replica-late'): string {
  const replica = when !== 'primary';
  const roles = replica ? 'replica' : 'primary|standalone';
  const stopped = replica ? 'replica-down' : 'down';
  const head = when === 'replica-late' ? `case "$r" in replica) ;; *) echo ok; exit 0 ;; esac`
    : `case "$r" in ${roles}) ;; ${stopped}) [ -e ${BASEBACKUP_MARKER} ] && { echo ok; exit 0; }; echo "stopped: start"; exit 0 ;; ${when === 'primary' ? 'nodata) [ "$FIRST" = 1 ] && { echo "new cluster: reload or restart with these settings"; exit 0; }; echo ok; exit 0 ;; ' : ''}*) echo ok; exit 0 ;; esac`;
  return `${lib}
r=$(pg_role)
${head}
t=$(mktemp -d); cat > "$t/want" <<'RTCTL_EOF'
${desired}RTCTL_EOF
cat ${SETTINGS_FILE} > "$t/have" 2>/dev/null || : > "$t/have"
rs=''; rl=''
for n in $( { grep -vxF -f "$t/have" "$t/want"; grep -vxF -f "$t/want" "$t/have"; } | sed -n 's/^\\([a-z_.]*\\) = .*/\\1/p' | sort -u); do
  if [ "$(q "select context from pg_settings where name = '$n'")" = postmaster ]; then rs="$rs $n"; else rl="$rl $n"; fi
done
late=''
${replica ? `for n in $rs; do
  case " ${HOT_STANDBY_PARAMS.join(' ')} " in *" $n "*) ;; *) continue ;; esac
  w=$(sed -n "s/^$n = \\([0-9]*\\)$/\\1/p" "$t/want"); c=$(q "select setting from pg_settings where name = '$n'")
  [ -n "$w" ] && [ -n "$c" ] && [ "$w" -lt "$c" ] && late="$late $n"
done` : ''}
rm -rf "$t"
${when === 'replica-late' ? '[ -n "$late" ] && echo "restart after the primary (lower hot-standby setting):$late" || echo ok; exit 0' : `[ -n "$late" ] && rs=''`}
owed=$(q "select string_agg(name, ' ' order by name) from pg_settings where pending_restart")
[ -n "$owed" ] && rs="$rs $owed"
[ "$(sha256sum < ${HBA_FILE} 2>/dev/null | cut -c1-64)" = ${hbaSha} ] || rl="$rl pg_hba.conf"
loaded=$(q "select extract(epoch from pg_conf_load_time())::bigint")
for f in ${SETTINGS_FILE} ${HBA_FILE} ${TLS_DIR}/server.crt ${TLS_DIR}/server.key ${TLS_DIR}/ca.crt; do
  [ -e "$f" ] && [ -n "$loaded" ] && [ "$(stat -c %Y "$f")" -gt "$loaded" ] && rl="$rl $(basename "$f")"
done
out=''
[ -n "$rs" ] && out="restart (postmaster context):$rs"
[ -n "$rl" ] && out="\${out:+$out; }reload:$(echo $rl | tr ' ' '\\n' | sort -u | tr '\\n' ' ' | sed 's/ $//; s/^/ /')"
echo "\${out:-ok}"`;
}

function settingsRun(lib: string, when: 'replica' | 'primary' | 'replica-late'): string {
  if (when === 'replica-late') {
    return `set -e
${lib}
case "$(pg_role)" in replica) ;; *) exit 0 ;; esac
# The file was written in stage 22 without a reload here: reload, so that pending_restart says what changed.
q 'select pg_reload_conf()' >/dev/null
sleep 1
${restartIfPending('restarting (after the primary) for')}`;
  }
  const roles = when === 'replica' ? 'replica|replica-down' : 'primary|standalone|down';
  // A replica whose file lowers a hot-standby setting below what it runs now waits for the primary's restart.
  const lowered = `select coalesce(string_agg(f.name, ' '), '') from pg_file_settings f join pg_settings s on s.name = f.name where f.name in (${HOT_STANDBY_PARAMS.map(sqlq).join(', ')}) and f.error = 'setting could not be applied' and f.setting ~ '^[0-9]+$' and f.setting::bigint < s.setting::bigint`;
  return `set -e
${lib}
case "$(pg_role)" in ${roles}) ;; *) exit 0 ;; esac
[ -e ${BASEBACKUP_MARKER} ] && exit 0
if [ -z "$(q 'select 1')" ]; then systemctl start ${UNIT}; exit 0; fi
q 'select pg_reload_conf()' >/dev/null
sleep 1
bad=$(q "select string_agg(name || ': ' || error, '; ') from pg_file_settings where error is not null and error <> 'setting could not be applied'")
[ -z "$bad" ] || { echo "postgresql.conf: $bad" >&2; exit 1; }
bad=$(q "select string_agg('line ' || line_number || ': ' || error, '; ') from pg_hba_file_rules where error is not null")
[ -z "$bad" ] || { echo "pg_hba.conf: $bad" >&2; exit 1; }
${when === 'replica' ? `dec=$(q ${shq(lowered)})
if [ -n "$dec" ]; then echo "restart after the primary's (lower hot-standby setting): $dec"; exit 0; fi
` : ''}${restartIfPending('restarting for')}`;
}

/** The end of a settings run: restart when a reloaded setting still waits for one (pg_settings.pending_restart), saying which. */
function restartIfPending(say: string): string {
  return `if [ "$(q 'select count(*) from pg_settings where pending_restart')" != 0 ]; then
  echo "${say}: $(q "select string_agg(name, ', ') from pg_settings where pending_restart")"
  systemctl restart ${UNIT}
fi`;
}

/**
 * Run script of a role exec: on the primary only, create ROLE if missing, then set its attributes. With
 * `password`, the password comes on stdin and the session has log_statement off, so it is in no log and no argv.
 */
function upsertRoleRun(lib: string, port: number, name: string, attrs: string, o: { password?: boolean; extraSql?: string } = {}): string {
  const create = `DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${sqlq(name)}) THEN CREATE ROLE ${sqlId(name)}; END IF; END$$;`;
  const alter = `ALTER ROLE ${sqlId(name)} WITH ${attrs}`;
  return `set -e
${lib}
case "$(pg_role)" in primary) ;; *) exit 0 ;; esac
${o.password ? 'pw=$(cat)\n' : ''}{ printf '%s\\n' 'SET log_statement = none;' ${shq(create)}
  ${o.password ? `printf ${shq(`${alter} PASSWORD $rtctlpw$%s$rtctlpw$;\\n`)} "$pw"` : `printf '%s\\n' ${shq(`${alter};`)}`}
  ${o.extraSql ? `printf '%s' ${shq(o.extraSql)}` : ':'}; } | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p ${port} -d postgres >/dev/null`;
}

/** Probe head of the execs that only concern the primary (and the configured primary's new cluster). */
const PRIMARY_ONLY = `case "$(pg_role)" in primary) ;; nodata) [ "$FIRST" = 1 ] && { echo "new cluster"; exit 0; }; echo ok; exit 0 ;; *) echo ok; exit 0 ;; esac`;

const isReady = (port: number) => `runuser -u postgres -- pg_isready -q -p ${port}`;

/** Streaming seen from both ends: pg_stat_wal_receiver here, pg_stat_replication on the primary it streams from. */
function streamingGate(lib: string, host: string): string {
  return `${lib}
case "$(pg_role)" in primary|fenced) exit 0 ;; esac
r=$(q "select status || ' ' || coalesce(sender_host, '') from pg_stat_wal_receiver")
case "$r" in "streaming "*) ;; *) echo "wal receiver: \${r:-not running}"; exit 1 ;; esac
s=$(rq "\${r#streaming }" "select state from pg_stat_replication where application_name = '${host}'")
[ "$s" = streaming ] || { echo "primary \${r#streaming } sees ${host} as: \${s:-not connected}"; exit 1; }
echo streaming`;
}

export const postgres: Recipe = {
  name: 'postgres',

  resources(p: Platform, host: Host): Resource[] {
    const d = p.doc.database;
    if (!d) return [];
    const members = dbMembers(p);
    const me = members.find((m) => m.name === host.name);
    if (!me) return [];
    const port = dbPort(d);
    const peers = members.filter((m) => m.name !== host.name);
    const lib = pgLib({ port, self: host.name, configuredPrimary: me.configuredPrimary, peers: peers.map((m) => m.address) });
    const origin = { path: 'database' };
    const settings = renderSettings(p);
    const hba = renderHba(p);
    const out: Resource[] = [];
    const S = STAGE;

    // 20: before the package, so that installing it creates no cluster (Debian's `main` would lack checksums).
    out.push({ type: 'directory', id: makeId('directory', '/etc/postgresql-common'), path: '/etc/postgresql-common', owner: 'root', group: 'root', mode: '0755', stage: S.prepare, origin });
    out.push({ type: 'directory', id: makeId('directory', '/etc/postgresql-common/createcluster.d'), path: '/etc/postgresql-common/createcluster.d', owner: 'root', group: 'root', mode: '0755', stage: S.prepare, origin });
    out.push({ type: 'file', id: makeId('file', '/etc/postgresql-common/createcluster.d/50-rtctl.conf'), path: '/etc/postgresql-common/createcluster.d/50-rtctl.conf', content: createclusterConf, owner: 'root', group: 'root', mode: '0644', sensitive: false, stage: S.prepare, origin });

    // 21: the package and the cluster.
    out.push({ type: 'package', id: makeId('package', `postgresql-${PG_VERSION}`), name: `postgresql-${PG_VERSION}`, stage: S.install, origin });
    out.push(exec('postgres-cluster', S.install, {
      description: `create cluster ${PG_VERSION}/main with data checksums (or adopt it)`,
      probe: `${lib}
if [ ! -f ${CONF_DIR}/postgresql.conf ]; then echo "no cluster"; exit 0; fi
cs=$($B/pg_controldata "$D" 2>/dev/null | sed -n 's/^Data page checksum version: *//p')
if [ "$cs" = 0 ] && [ ! -e "$D/standby.signal" ] && [ "$(q 'select count(*) from pg_database')" = 3 ] && [ "$(q "select count(*) from pg_roles where rolname !~ '^pg_'")" = 1 ]; then
  echo "unused cluster without data checksums: recreate"
else echo ok; fi`,
      want: 'ok',
      // An existing cluster is adopted; only the never-used one Debian makes on install is recreated, keeping
      // rtctl's files in /etc/postgresql/15/main.
      run: `set -e
keep=''
if [ -f ${CONF_DIR}/postgresql.conf ]; then
  keep=$(mktemp -d)
  for f in conf.d pg_hba.conf tls; do [ -e ${CONF_DIR}/$f ] && cp -a ${CONF_DIR}/$f "$keep/"; done
  pg_dropcluster --stop ${PG_VERSION} main
fi
pg_createcluster ${PG_VERSION} main -- --data-checksums >/dev/null
if [ -n "$keep" ]; then cp -a "$keep"/. ${CONF_DIR}/; rm -rf "$keep"; fi
systemctl start ${UNIT}`,
    }));

    // 22: configuration (same on every host), TLS, the replication password for postgres, the fence.
    out.push({ type: 'directory', id: makeId('directory', TLS_DIR), path: TLS_DIR, owner: 'postgres', group: 'postgres', mode: '0750', stage: S.config, origin });
    const tls = (name: string, ref: string, mode: string) =>
      out.push({ type: 'file', id: makeId('file', `${TLS_DIR}/${name}`), path: `${TLS_DIR}/${name}`, content: `\${file:${ref}}\n`, owner: 'postgres', group: 'postgres', mode, sensitive: true, stage: S.config, origin });
    tls('ca.crt', `${SECRETS_DIR}/ca.crt`, '0640');
    tls('server.crt', `${SECRETS_DIR}/server-${host.name}.crt`, '0640');
    tls('server.key', `${SECRETS_DIR}/server-${host.name}.key`, '0600');
    out.push({ type: 'file', id: makeId('file', SETTINGS_FILE), path: SETTINGS_FILE, content: settings, owner: 'postgres', group: 'postgres', mode: '0644', sensitive: false, check: SETTINGS_CHECK, stage: S.config, origin });
    out.push({ type: 'file', id: makeId('file', HBA_FILE), path: HBA_FILE, content: hba, owner: 'postgres', group: 'postgres', mode: '0640', sensitive: false, stage: S.config, origin });
    out.push({ type: 'file', id: makeId('file', PGPASS), path: PGPASS, content: `*:*:*:${REPLICATION_USER}:\${file:${REPLICATION_PASSWORD}}\n`, owner: 'postgres', group: 'postgres', mode: '0600', sensitive: true, stage: S.config, origin });
    const fence = renderFenceScript(p, host);
    out.push({ type: 'file', id: makeId('file', FENCE_SCRIPT), path: FENCE_SCRIPT, content: fence, owner: 'root', group: 'root', mode: '0755', sensitive: false, stage: S.config, origin });
    out.push({ type: 'directory', id: makeId('directory', FENCE_DROPIN_DIR), path: FENCE_DROPIN_DIR, owner: 'root', group: 'root', mode: '0755', stage: S.config, origin });
    out.push({ type: 'file', id: makeId('file', FENCE_DROPIN), path: FENCE_DROPIN, content: fenceDropin, owner: 'root', group: 'root', mode: '0644', sensitive: false, stage: S.config, origin });
    out.push(exec('postgres-fence-loaded', S.config, {
      description: `systemd loads the fence check of ${UNIT}`,
      probe: `if [ "$(sha256sum < ${FENCE_DROPIN} 2>/dev/null | cut -c1-64)" = ${sha256(fenceDropin)} ] && systemctl show -p DropInPaths ${UNIT} | grep -q rtctl-fence.conf && [ "$(systemctl show -p NeedDaemonReload --value ${UNIT})" = no ]; then echo ok; else echo "not loaded"; fi`,
      want: 'ok',
      run: 'systemctl daemon-reload',
    }));
    if (p.doc.consul !== undefined) {
      out.push({ type: 'file', id: makeId('file', ROLE_CHECK_SCRIPT), path: ROLE_CHECK_SCRIPT, content: renderRoleCheck(port), owner: 'root', group: 'root', mode: '0755', sensitive: false, stage: S.config, origin });
      for (const reg of consulRegistrations(host, port)) out.push(...serviceDefinition(p, host, reg, S.config).map((r) => ({ ...r, origin })));
    }
    const hbaSha = sha256(hba);
    out.push(exec('postgres-config-replica', S.config, {
      description: 'apply settings on a replica (before the primary)',
      probe: settingsProbe(lib, settings, hbaSha, 'replica'),
      want: 'ok',
      run: settingsRun(lib, 'replica'),
      showState: true,
      gate: { script: isReady(port), timeoutSec: 60, what: 'postgres accepting connections' },
    }));

    // 23: the primary (whichever host it is now).
    out.push(exec('postgres-config-primary', S.primary, {
      description: 'apply settings on the primary (after the replicas)',
      probe: settingsProbe(lib, settings, hbaSha, 'primary'),
      want: 'ok',
      run: settingsRun(lib, 'primary'),
      showState: true,
      gate: { script: isReady(port), timeoutSec: 60, what: 'postgres accepting connections' },
    }));
    // pg_rewind's source needs these functions (docs: pg_rewind, "non-superuser"); pg_monitor lets the
    // replication role read pg_stat_replication for the streaming gate and `rtctl db status`.
    const rewindFns = ['pg_catalog.pg_ls_dir(text, boolean, boolean)', 'pg_catalog.pg_stat_file(text, boolean)', 'pg_catalog.pg_read_binary_file(text)', 'pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)'];
    const grants = `GRANT pg_monitor TO ${REPLICATION_USER};\n${rewindFns.map((f) => `GRANT EXECUTE ON FUNCTION ${f} TO ${REPLICATION_USER};`).join('\n')}\n`;
    const grantsOk = rewindFns.map((f) => `has_function_privilege('${REPLICATION_USER}', '${f}', 'execute')`).join(' and ');
    out.push(exec('postgres-replication-role', S.primary, {
      description: `replication role ${REPLICATION_USER} (password from .pgpass, scram-sha-256)`,
      probe: `${lib}
${PRIMARY_ONLY}
[ "$(q "select 1 from pg_roles where rolname = '${REPLICATION_USER}' and rolreplication and rolcanlogin")" = 1 ] || { echo missing; exit 0; }
[ "$(q "select pg_has_role('${REPLICATION_USER}', 'pg_monitor', 'member') and ${grantsOk}")" = t ] || { echo "grants missing"; exit 0; }
[ "$(rq 127.0.0.1 'select 1')" = 1 ] || { echo "password differs from .pgpass"; exit 0; }
echo ok`,
      want: 'ok',
      run: upsertRoleRun(lib, port, REPLICATION_USER, 'REPLICATION LOGIN', { password: true, extraSql: grants }),
      stdin: `\${file:${REPLICATION_PASSWORD}}`,
    }));
    if (p.doc.consul !== undefined) {
      // The Consul role check's login: peer authentication on the local socket only (pg_hba), no privileges.
      out.push(exec('postgres-check-role', S.primary, {
        description: `role ${CHECK_ROLE} for the Consul role check (local peer login, no privileges)`,
        probe: `${lib}
${PRIMARY_ONLY}
[ "$(q "select rolcanlogin and not rolsuper and not rolcreaterole and not rolcreatedb from pg_roles where rolname = '${CHECK_ROLE}'")" = t ] && echo ok || echo "missing"`,
        want: 'ok',
        run: upsertRoleRun(lib, port, CHECK_ROLE, 'LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB'),
      }));
    }
    const wantSlots = peers.map((m) => slotName(m.name)).sort();
    out.push(exec('postgres-slots', S.primary, {
      description: `a physical replication slot per replica (${wantSlots.join(', ') || 'none'})`,
      probe: `${lib}
${PRIMARY_ONLY}
have=$(q "select coalesce(string_agg(slot_name, ' ' order by slot_name), '') from pg_replication_slots where slot_name like 'rtctl\\_%'")
[ "$have" = ${shq(wantSlots.join(' '))} ] && echo ok || echo "slots: \${have:-none}"`,
      want: 'ok',
      run: `set -e
${lib}
case "$(pg_role)" in primary) ;; *) exit 0 ;; esac
for s in ${wantSlots.join(' ')}; do q "select pg_create_physical_replication_slot('$s') where not exists (select from pg_replication_slots where slot_name = '$s')" >/dev/null; done
q "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like 'rtctl\\_%' and not active and slot_name not in (${[...wantSlots, ''].map(sqlq).join(', ')})" >/dev/null`,
    }));
    for (const role of d.roles ?? []) {
      const createdb = role.createdb ?? false;
      out.push(exec(`postgres-role-${role.name}`, S.primary, {
        description: `role ${role.name}`,
        probe: `${lib}
${PRIMARY_ONLY}
[ "$(q "select rolcanlogin and rolcreatedb = ${createdb} from pg_roles where rolname = ${sqlq(role.name)}")" = t ] || { echo "missing or attributes differ"; exit 0; }
PGPASSWORD=$(cat <<'RTCTL_EOF'
${role.password}
RTCTL_EOF
)
export PGPASSWORD
[ "$(runuser -u postgres -- psql -X -q -A -t -d "host=127.0.0.1 port=$P user=${role.name} dbname=postgres sslmode=require connect_timeout=3" -c 'select 1' 2>/dev/null)" = 1 ] && echo ok || echo "password differs"`,
        want: 'ok',
        run: upsertRoleRun(lib, port, role.name, `LOGIN ${createdb ? 'CREATEDB' : 'NOCREATEDB'}`, { password: true }),
        stdin: role.password,
      }));
    }
    for (const db of d.databases ?? []) {
      out.push(exec(`postgres-db-${db.name}`, S.primary, {
        description: `database ${db.name} owned by ${db.owner}`,
        probe: `${lib}
${PRIMARY_ONLY}
o=$(q "select pg_get_userbyid(datdba) from pg_database where datname = ${sqlq(db.name)}")
[ "$o" = ${shq(db.owner)} ] && echo ok || echo "\${o:+owner $o}\${o:-missing}"`,
        want: 'ok',
        run: `set -e
${lib}
case "$(pg_role)" in primary) ;; *) exit 0 ;; esac
if [ -z "$(q "select 1 from pg_database where datname = ${sqlq(db.name)}")" ]; then
  runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p $P -d postgres -c ${shq(`CREATE DATABASE ${sqlId(db.name)} OWNER ${sqlId(db.owner)}`)}
else
  runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p $P -d postgres -c ${shq(`ALTER DATABASE ${sqlId(db.name)} OWNER TO ${sqlId(db.owner)}`)}
fi`,
      }));
    }

    // 24: a replica's restart that had to wait for the primary's (a lowered hot-standby setting).
    out.push(exec('postgres-config-replica-late', S.replica, {
      description: 'restart a replica after the primary (a lowered hot-standby setting)',
      probe: settingsProbe(lib, settings, hbaSha, 'replica-late'),
      want: 'ok',
      run: settingsRun(lib, 'replica-late'),
      showState: true,
      gate: { script: streamingGate(lib, host.name), timeoutSec: 90, intervalSec: 2, what: `${host.name} streaming from the primary` },
    }));
    // 24: a host that isn't the primary becomes a streaming replica of whichever host is primary now.
    const conninfo = primaryConninfo('$pa', port, host.name).replace('host=$pa', 'host=%s');
    out.push(exec('postgres-replica', S.replica, {
      description: 'streaming replica (pg_basebackup -R from the primary through its slot)',
      probe: `${lib}
r=$(pg_role)
case "$r" in
  primary|fenced) echo ok ;;
  replica) grep -q "application_name=${host.name} " "$D/postgresql.auto.conf" 2>/dev/null && echo ok || echo "replica without application_name=${host.name}" ;;
  replica-down) echo "replica stopped: start" ;;
  standalone) echo "not a replica yet: base backup" ;;
  nodata) [ "$FIRST" = 1 ] && echo ok || echo "no data: base backup" ;;
  down) [ -e ${BASEBACKUP_MARKER} ] && echo "interrupted base backup: start again" || echo "stopped, not a replica: refuse" ;;
esac`,
      want: 'ok',
      run: `set -e
${lib}
${WRITE_STANDBY_CONFIG}
r=$(pg_role)
case "$r" in
  primary|fenced) exit 0 ;;
  replica-down) systemctl start ${UNIT}; exit 0 ;;
  down) [ -e ${BASEBACKUP_MARKER} ] || { echo "postgres on ${host.name} is stopped and is not a replica: rtctl won't overwrite its data (start it, or use rtctl db rejoin ${host.name})" >&2; exit 1; } ;;
esac
pa=$(find_primary) || { echo "no primary found among: $PEERS" >&2; exit 1; }
ci=$(printf '${conninfo}' "$pa")
if [ "$r" = replica ]; then
  # A replica streaming without its application_name: re-point it (primary_conninfo reloads without restart).
  q "alter system set primary_conninfo = '$ci'" >/dev/null; q "alter system set primary_slot_name = '${slotName(host.name)}'" >/dev/null; q 'select pg_reload_conf()' >/dev/null; exit 0
fi
rq "$pa" "select pg_create_physical_replication_slot('${slotName(host.name)}') where not exists (select from pg_replication_slots where slot_name = '${slotName(host.name)}')" >/dev/null
mkdir -p ${STATE_DIR}; touch ${BASEBACKUP_MARKER}
systemctl stop ${UNIT}
# Whatever an interrupted backup left behind goes: the data dir is refilled from scratch.
base_backup "$ci" ${slotName(host.name)}
systemctl start ${UNIT}`,
      gate: { script: streamingGate(lib, host.name), timeoutSec: 90, intervalSec: 2, what: `${host.name} streaming from the primary` },
    }));
    return out;
  },

  rules(p: Platform): Problem[] {
    const d = p.doc.database;
    if (!d) return [];
    const out: Problem[] = [];
    const names = p.hosts.map((h) => h.name);
    const known = new Set(names);
    if (!known.has(d.primary)) out.push({ path: ['database', 'primary'], message: `unknown host "${d.primary}"${hint(d.primary, names)}` });
    const replicas = d.replicas ?? [];
    const seen = new Set<string>();
    replicas.forEach((r, i) => {
      if (!known.has(r)) out.push({ path: ['database', 'replicas', i], message: `unknown host "${r}"${hint(r, names)}` });
      else if (r === d.primary) out.push({ path: ['database', 'replicas', i], message: `"${r}" is the primary; a host can't also be one of its replicas` });
      else if (seen.has(r)) out.push({ path: ['database', 'replicas', i], message: `"${r}" is listed twice` });
      seen.add(r);
    });
    const rep = d.replication;
    const usable = replicas.filter((r, i) => known.has(r) && r !== d.primary && replicas.indexOf(r) === i).length;
    if (rep?.mode === 'sync' && usable === 0) {
      out.push({ path: ['database', 'replication', 'mode'], message: 'synchronous replication needs at least one replica (database.replicas is empty)' });
    } else if (rep?.mode === 'sync' && (rep.standbys ?? 1) > usable) {
      out.push({ path: ['database', 'replication', 'standbys'], message: `${rep.standbys} synchronous standbys, but only ${usable} replica${usable === 1 ? '' : 's'}: every commit would wait forever` });
    }
    if (rep?.mode === 'async' && rep.standbys !== undefined) out.push({ path: ['database', 'replication', 'standbys'], message: '`standbys` only applies to `mode: sync`' });
    const roles = (d.roles ?? []).map((r) => r.name);
    (d.roles ?? []).forEach((r, i) => {
      if (findRefs(r.password).length === 0) out.push({ path: ['database', 'roles', i, 'password'], message: 'must be a secret reference (${file:PATH} or ${env:NAME}), not a password in clear' });
      if (r.name === REPLICATION_USER || r.name === 'postgres' || r.name === CHECK_ROLE) out.push({ path: ['database', 'roles', i, 'name'], message: `"${r.name}" is managed by rtctl itself` });
      if (roles.indexOf(r.name) !== i) out.push({ path: ['database', 'roles', i, 'name'], message: `role "${r.name}" is listed twice` });
    });
    (d.databases ?? []).forEach((db, i) => {
      if (!roles.includes(db.owner)) out.push({ path: ['database', 'databases', i, 'owner'], message: `unknown role "${db.owner}"${hint(db.owner, roles)} (owners must be listed in database.roles)` });
    });
    const dbs = ['all', 'replication', ...(d.databases ?? []).map((x) => x.name), 'postgres'];
    (d.access ?? []).forEach((a, i) => {
      if (!dbs.includes(a.database)) out.push({ path: ['database', 'access', i, 'database'], message: `unknown database "${a.database}"${hint(a.database, dbs)}` });
      if (a.user !== 'all' && !roles.includes(a.user)) out.push({ path: ['database', 'access', i, 'user'], message: `unknown role "${a.user}"${hint(a.user, roles)}` });
    });
    for (const k of Object.keys(d.settings ?? {})) {
      if (['port', 'primary_conninfo', 'primary_slot_name', 'data_directory', 'hba_file'].includes(k)) {
        out.push({ path: ['database', 'settings', k], key: true, message: `\`${k}\` is managed by rtctl${k === 'port' ? ' (use database.port)' : ''}` });
      }
    }
    return out;
  },

  secrets(p: Platform): GeneratedSecret[] {
    if (!p.doc.database) return [];
    const members = dbMembers(p);
    return [
      { path: REPLICATION_PASSWORD, generate: () => Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(24))).toString('base64url') },
      ...caSecrets(SECRETS_DIR, `rtctl ${p.name} postgres CA`),
      ...members.flatMap((m) => leafSecrets(SECRETS_DIR, { name: `server-${m.name}`, commonName: m.name, dns: [m.name, 'localhost'], ips: [m.address, '127.0.0.1'] })),
    ];
  },
};

