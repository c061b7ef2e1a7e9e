/**
 * PostgreSQL on Debian, as pure data shared by the recipe (recipes/postgres.ts) and the db commands
 * (src/db/*.ts): the cluster layout, and the small POSIX sh library every remote script starts with.
 * Nothing here runs anything.
 */
import type { Platform } from '../model/platform.js';
import type { DatabaseDoc } from '../model/sections/database.js';

export const PG_VERSION = 15;
/** Debian's layout for cluster `15/main`. */
export const CONF_DIR = `/etc/postgresql/${PG_VERSION}/main`;
export const DATA_DIR = `/var/lib/postgresql/${PG_VERSION}/main`;
export const BIN_DIR = `/usr/lib/postgresql/${PG_VERSION}/bin`;
export const UNIT = `postgresql@${PG_VERSION}-main`;
export const TLS_DIR = `${CONF_DIR}/tls`;
/** rtctl's own state on a database host (the fence marker, an interrupted base backup). */
export const STATE_DIR = '/var/lib/rtctl/postgres';
export const FENCE_MARKER = `${STATE_DIR}/fenced`;
export const BASEBACKUP_MARKER = `${STATE_DIR}/basebackup-started`;
export const REPLICATION_USER = 'replicator';
export const PGPASS = '/var/lib/postgresql/.pgpass';
export const SECRETS_DIR = '.rtctl/secrets/postgres';
export const REPLICATION_PASSWORD = `${SECRETS_DIR}/replicator.password`;

/** The database hosts of a platform: name, address, and whether platform.yaml names it the (first) primary. */
export interface DbMember {
  name: string;
  address: string;
  configuredPrimary: boolean;
}

export function dbMembers(p: Platform): DbMember[] {
  const d = p.doc.database;
  if (!d) return [];
  const names = [d.primary, ...(d.replicas ?? [])];
  return p.hosts.filter((h) => names.includes(h.name)).map((h) => ({ name: h.name, address: h.address, configuredPrimary: h.name === d.primary }));
}

export function dbPort(d: DatabaseDoc | undefined): number {
  return d?.port ?? 5432;
}

/** The physical replication slot a host streams from: `rtctl_<host>` (slot names allow only [a-z0-9_]). */
export function slotName(host: string): string {
  return `rtctl_${host.replace(/[^a-z0-9_]/g, '_')}`;
}

/** A single-quoted sh word. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A single-quoted SQL literal. */
export function sqlq(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** A double-quoted SQL identifier. */
export function sqlId(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/**
 * libpq connection string a replica streams with: TLS verified against the internal CA, the password from
 * postgres' .pgpass (never in the string), and the host's name as application_name (what
 * synchronous_standby_names matches; Debian's cluster_name is '15/main' on every host).
 */
export function primaryConninfo(primaryAddress: string, port: number, applicationName: string): string {
  return `host=${primaryAddress} port=${port} user=${REPLICATION_USER} passfile=${PGPASS} sslmode=verify-full sslrootcert=${TLS_DIR}/ca.crt application_name=${applicationName} connect_timeout=5`;
}

/**
 * The sh prelude of every remote script: layout variables and helpers.
 * - `q SQL`: query the local server as postgres over the socket (peer auth), unaligned, tuples only.
 * - `rq ADDR SQL`: query a peer as the replication role over TLS (password from .pgpass).
 * - `pg_role`: this host's role read from the host itself: fenced | nodata | primary | standalone | replica |
 *   replica-down | down. `standalone` is a running cluster that never joined (no replication role: a fresh
 *   cluster on a host that is to become a replica); the configured primary counts as primary from the start.
 * - `find_primary`: prints the address of the peer that is a primary now (not in recovery), if any.
 */
export function pgLib(o: { port: number; self: string; configuredPrimary: boolean; peers: string[] }): string {
  // rtctl's own writes on the primary (roles, databases) must not wait for synchronous standbys that don't
  // exist yet (a new cluster) or are down (a failover): they are replicated like everything else, just not awaited.
  return `export PGOPTIONS='-c synchronous_commit=local'
D=${DATA_DIR}; C=${CONF_DIR}; B=${BIN_DIR}; S=${STATE_DIR}; P=${o.port}; U=${UNIT}; ME=${shq(o.self)}; FIRST=${o.configuredPrimary ? 1 : 0}; PEERS=${shq(o.peers.join(' '))}
q() { runuser -u postgres -- psql -X -q -A -t -p "$P" -d postgres -c "$1" 2>/dev/null; }
rq() { runuser -u postgres -- psql -X -q -A -t -d "host=$1 port=$P user=${REPLICATION_USER} dbname=postgres sslmode=verify-full sslrootcert=$C/tls/ca.crt connect_timeout=3" -c "$2" 2>/dev/null; }
pg_role() {
  if [ -e ${FENCE_MARKER} ]; then echo fenced; return; fi
  if [ ! -f "$D/PG_VERSION" ]; then echo nodata; return; fi
  case "$(q 'select pg_is_in_recovery()')" in
    t) echo replica ;;
    f) if [ "$FIRST" = 1 ] || [ "$(q "select 1 from pg_roles where rolname = '${REPLICATION_USER}'")" = 1 ]; then echo primary; else echo standalone; fi ;;
    *) if [ -e "$D/standby.signal" ]; then echo replica-down; else echo down; fi ;;
  esac
}
find_primary() { for a in $PEERS; do if [ "$(rq "$a" 'select pg_is_in_recovery()')" = f ]; then echo "$a"; return 0; fi; done; return 1; }
`;
}

/**
 * `write_standby CONNINFO SLOT` makes this host a standby: standby.signal plus primary_conninfo/primary_slot_name
 * in postgresql.auto.conf (replacing earlier ones); `base_backup CONNINFO SLOT` refills the data dir from the
 * primary first. The server must be stopped.
 */
export const WRITE_STANDBY_CONFIG = `write_standby() {
  f="$D/postgresql.auto.conf"; touch "$f"
  grep -v -e '^primary_conninfo' -e '^primary_slot_name' "$f" > "$f.rtctl" || true
  printf "primary_conninfo = '%s'\\nprimary_slot_name = '%s'\\n" "$1" "$2" >> "$f.rtctl"
  chown postgres:postgres "$f.rtctl"; chmod 600 "$f.rtctl"; mv "$f.rtctl" "$f"
  runuser -u postgres -- touch "$D/standby.signal"
}
# A fresh copy of the primary into an emptied data dir (args: conninfo, slot), then standby config. The server
# must be stopped; a marker makes an interrupted copy start again from scratch (the replica recipe's probe).
base_backup() {
  mkdir -p ${STATE_DIR}; touch ${BASEBACKUP_MARKER}
  mkdir -p "$D"; chown postgres:postgres "$D"; chmod 700 "$D"
  find "$D" -mindepth 1 -delete
  runuser -u postgres -- pg_basebackup -d "$1" -D "$D" -X stream -S "$2" -c fast
  write_standby "$1" "$2"
  rm -f ${BASEBACKUP_MARKER}
}
`;
