/**
 * Consul: an agent on every host (servers on the selected 3 or 5, clients elsewhere), secure by default.
 *
 * - Gossip encryption with a key rtctl generates once; RPC TLS (verify incoming/outgoing, server hostname
 *   verification) with certificates from rtctl's internal CA (recipes/ca.ts; the CA key never leaves the
 *   operator's machine).
 * - ACLs with default deny. rtctl generates every token's SecretID itself, so nothing has to be read back from a
 *   host: the management token is the servers' `acl.tokens.master` (1.8) / `initial_management` (1.11+), which
 *   the first leader creates; agent, DNS-read and service tokens are then created with those SecretIDs by an
 *   exec on the first server. The DNS-read token is every agent's default token, so discovery works under
 *   default deny while anonymous writes and KV reads are denied.
 * - Configuration is rendered for the Consul version in use (1.8: TLS keys at top level; 1.12+: the `tls`
 *   stanza) and checked with `consul validate` on the whole config directory before it replaces the old file.
 * - Servers first (stage 10, restarted one at a time with a leader-and-voters gate), then ACL tokens and KV
 *   (stage 11), then clients (stage 12), then what depends on a running agent (watches, stage 13).
 */
import { createHash } from 'node:crypto';
import type { Host, Platform } from '../src/model/platform.js';
import { selectHosts } from '../src/model/platform.js';
import type { ExecResource, Gate, Resource } from '../src/model/resources.js';
import { makeId } from '../src/model/resources.js';
import type { ConfigDoc, ConsulDoc, ConsulServiceDoc } from '../src/model/sections/consul.js';
import type { Problem } from '../src/config/validate.js';
import { sh } from '../src/util/shell.js';
import { dbMembers } from '../src/db/pgsh.js';
import { caSecrets, leafSecrets } from './ca.js';
import type { GeneratedSecret, Recipe } from './types.js';

export const CONSUL_STAGE = { servers: 10, acl: 11, clients: 12, after: 13 } as const;
export const SECRETS = '.rtctl/secrets/consul';
const ETC = '/etc/consul.d';
const DATA = '/var/lib/consul';
const BIN = '/opt/consul/current/consul';
const UNIT = 'consul.service';
const MGMT_FILE = `${ETC}/management.token`;
/** KV key (under the management token) listing the keys rtctl wrote, so that only those are ever deleted. */
export const MANAGED_KEYS = 'rtctl/managed-keys';

const ref = (name: string) => `\${file:${SECRETS}/${name}}`;
const uuid = (bytes: Buffer) => {
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${((Number.parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
};

export function consulDoc(p: Platform): ConsulDoc | undefined {
  return p.doc.consul as ConsulDoc | undefined;
}

export function servers(p: Platform): Host[] {
  const c = consulDoc(p);
  return c ? selectHosts(p.hosts, c.servers) : [];
}

/** [major, minor] from the artifact's version ("1.8.7" → [1, 8]). */
export function consulVersion(p: Platform): [number, number] {
  const c = consulDoc(p)!;
  const m = /^v?(\d+)\.(\d+)/.exec(p.artifacts[c.artifact]?.version ?? '');
  return m ? [Number(m[1]), Number(m[2])] : [1, 8];
}

const atLeast = (v: [number, number], major: number, minor: number) => v[0] > major || (v[0] === major && v[1] >= minor);

/** The agent configuration (JSON) for one host; secrets stay references. */
export function agentConfig(p: Platform, host: Host): Record<string, unknown> {
  const c = consulDoc(p)!;
  const v = consulVersion(p);
  const dc = c.datacenter ?? 'dc1';
  const srv = servers(p);
  const isServer = srv.some((s) => s.name === host.name);
  const tls = c.tls ?? true;
  const acl = c.acl ?? true;
  const cfg: Record<string, unknown> = {
    datacenter: dc,
    node_name: host.name,
    data_dir: DATA,
    bind_addr: host.address,
    advertise_addr: host.address,
    client_addr: '127.0.0.1',
    retry_join: srv.map((s) => s.address),
    ports: { dns: 8600, http: 8500 },
    log_level: 'INFO',
    leave_on_terminate: !isServer,
    disable_update_check: true,
  };
  if (isServer) Object.assign(cfg, { server: true, bootstrap_expect: srv.length });
  // Names outside .consul: forwarded to these (with dns_forwarding, every lookup on the host goes through Consul).
  if (c.recursors?.length) cfg.recursors = c.recursors;
  // The postgres role check is a script check (args); only checks from config files, never from the HTTP API.
  if (dbMembers(p).some((m) => m.name === host.name)) cfg.enable_local_script_checks = true;
  if (c.ui) Object.assign(cfg, atLeast(v, 1, 9) ? { ui_config: { enabled: true } } : { ui: true });
  if (c.encrypt ?? true) cfg.encrypt = ref('gossip.key');
  if (tls) {
    const files = { ca_file: `${ETC}/tls/ca.pem`, cert_file: `${ETC}/tls/agent.pem`, key_file: `${ETC}/tls/agent-key.pem` };
    if (atLeast(v, 1, 12)) {
      cfg.tls = {
        defaults: { ...files, verify_outgoing: true },
        internal_rpc: { verify_incoming: true, verify_server_hostname: true },
      };
    } else {
      Object.assign(cfg, files, { verify_incoming_rpc: true, verify_outgoing: true, verify_server_hostname: true });
    }
  }
  if (acl) {
    const tokens: Record<string, string> = { agent: ref(`agent-${host.name}.token`), default: ref('dns.token') };
    if (isServer) tokens[atLeast(v, 1, 11) ? 'initial_management' : 'master'] = ref('management.token');
    cfg.acl = { enabled: true, default_policy: 'deny', down_policy: 'extend-cache', enable_token_persistence: false, tokens };
  }
  return cfg;
}

/** Every service name that gets a token: config services, registered services, the services section's, postgres. */
export function serviceNames(p: Platform): string[] {
  const cfg = p.doc.config as ConfigDoc | undefined;
  const svc = (p.doc as { services?: unknown }).services;
  const fromServices = Array.isArray(svc) ? svc.map((s: { name?: string }) => s.name ?? '') : svc && typeof svc === 'object' ? Object.keys(svc) : [];
  return [...new Set([...Object.keys(cfg?.services ?? {}), ...(consulDoc(p)?.register ?? []).map((r) => r.name), ...fromServices, ...(p.doc.database ? ['postgres'] : [])].filter(Boolean))].sort();
}

export interface ServiceRegistration {
  /** Unique on the host, e.g. `hello-8080`. */
  id: string;
  name: string;
  port: number;
  tags?: string[];
  meta?: Record<string, string>;
  /**
   * http/tcp: checked on 127.0.0.1:<port>, deregistered after 30 min critical. args: a script the agent runs as
   * the consul user (needs `enable_local_script_checks`, set on hosts that register one); never deregistered,
   * since a critical script check is an expected state (a replica's `primary` instance).
   */
  check?: { http?: string; tcp?: boolean; args?: string[]; name?: string; interval?: string; timeout?: string };
}

/**
 * Resources that register a service with the local Consul agent: a definition file carrying the service's own
 * token (service-identity: least privilege), checked with `consul validate`, picked up by a reload. For other
 * recipes (services, postgres) as well as `consul.register`. Empty when the platform has no Consul.
 */
export function serviceDefinition(p: Platform, host: Host, reg: ServiceRegistration, stage: number = CONSUL_STAGE.after): Resource[] {
  const c = consulDoc(p);
  if (!c) return [];
  const k = reg.check;
  const check = k
    ? [{
        id: `${reg.id}-check`,
        name: k.name ?? (k.args ? 'script' : k.http ? `HTTP ${k.http}` : 'TCP'),
        ...(k.args ? { args: k.args } : k.http ? { http: `http://127.0.0.1:${reg.port}${k.http}` } : { tcp: `127.0.0.1:${reg.port}` }),
        interval: k.interval ?? '5s',
        timeout: k.timeout ?? '2s',
        ...(k.args ? {} : { deregister_critical_service_after: '30m' }),
      }]
    : [];
  const def = {
    service: {
      id: reg.id, name: reg.name, port: reg.port, address: host.address, tags: reg.tags ?? [], meta: reg.meta ?? {}, checks: check,
      ...((c.acl ?? true) ? { token: ref(`service-${reg.name}.token`) } : {}),
    },
  };
  const path = `${ETC}/service-${reg.id}.json`;
  return [{
    type: 'file', id: makeId('file', path), path, content: `${JSON.stringify(def, null, 2)}\n`, owner: 'root', group: 'consul', mode: '0640',
    sensitive: true, stage, notify: [`reload:${makeId('unit', UNIT)}`],
    check: `d=$(mktemp -d) && cp -a ${ETC}/. "$d"/ && rm -f "$d"/.rtctl-* && cp {} "$d/service-${reg.id}.json" && ${BIN} validate "$d" >/dev/null; rc=$?; rm -rf "$d"; exit $rc`,
  }];
}

/** The KV pairs rtctl keeps: key → value (values may hold secret references). */
export function kvPairs(p: Platform): [string, string][] {
  const cfg = p.doc.config as ConfigDoc | undefined;
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(cfg?.global ?? {})) out.push([`config/global/${k}`, v]);
  for (const [svc, kv] of Object.entries(cfg?.services ?? {})) for (const [k, v] of Object.entries(kv)) out.push([`config/${svc}/${k}`, v]);
  return out.sort(([a], [b]) => a.localeCompare(b));
}

/** Scripts find the binary in the current release, whether or not /usr/local/bin/consul exists yet. */
const PATHS = 'export PATH=/opt/consul/current:$PATH';
const withMgmt = (body: string) => `${PATHS} CONSUL_HTTP_TOKEN_FILE=${MGMT_FILE}\n${body}`;

/** When a gate fails, the agent's own latest errors say why (a TLS or gossip-key mismatch, a refused token…). */
const AGENT_ERRORS = `journalctl -u ${UNIT} -n 200 --no-pager -o cat 2>/dev/null | grep -E '\\[(ERROR|WARN)\\]' | tail -n 4 | cut -c1-240`;

/** Leader elected and every server a voter (the management token is on the servers for this). */
function clusterGate(n: number, acl: boolean): Gate {
  const list = acl ? withMgmt('consul operator raft list-peers') : `${PATHS}; consul operator raft list-peers`;
  return {
    what: `a Consul leader and ${n} voters`,
    timeoutSec: 120,
    intervalSec: 2,
    script: `out=$(${list} 2>&1) || { echo "$out"; ${AGENT_ERRORS}; exit 1; }; echo "$out"; echo "$out" | grep -qw leader && [ "$(echo "$out" | awk '$5=="true"' | wc -l)" -ge ${n} ]`,
  };
}

function aclSetup(p: Platform, hosts: Host[]): ExecResource {
  const dc = consulDoc(p)!.datacenter ?? 'dc1';
  const tokens: [string, string, string][] = [
    ['dns.token', 'rtctl: DNS and catalog read (default token)', '-policy-name=rtctl-dns-read'],
    ...hosts.map((h): [string, string, string] => [`agent-${h.name}.token`, `rtctl: agent ${h.name}`, `-node-identity=${h.name}:${dc}`]),
    ...serviceNames(p).map((s): [string, string, string] => [`service-${s}.token`, `rtctl: service ${s}`, `-service-identity=${s} -policy-name=rtctl-svc-${s}`]),
  ];
  // `-token` loses to CONSUL_HTTP_TOKEN_FILE, so the token being checked goes in CONSUL_HTTP_TOKEN alone.
  const has = `self() { t=$1; shift; CONSUL_HTTP_TOKEN="$t" env -u CONSUL_HTTP_TOKEN_FILE consul acl token read -self "$@" 2>/dev/null; }
has() { self "$1" >/dev/null; }
hassvc() { self "$2" | grep -q "rtctl-svc-$1"; }`;
  const probe = withMgmt(`${has}
m=''
${tokens.map(([f]) => `${f.startsWith('service-') ? `hassvc ${sh(f.slice(8, -6))}` : 'has'} ${sh(ref(f))} || m="$m ${f.replace('.token', '')}"`).join('\n')}
[ -n "$m" ] && echo "missing:$m" || echo ok`);
  const script = withMgmt(`set -e
i=0; until consul acl token read -self >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 90 ] || { echo "the ACL system is not ready (no leader, or the management token was not created)" >&2; exit 1; }; sleep 1; done
consul acl policy read -name rtctl-dns-read >/dev/null 2>&1 || consul acl policy create -name rtctl-dns-read -description "rtctl: read services and nodes (DNS)" -rules 'service_prefix "" { policy = "read" } node_prefix "" { policy = "read" }' >/dev/null
${has}
# A service's own token: its service identity, plus reading its KV prefix and config/global/ and the agent
# (what \`consul watch\` needs), nothing else.
svcpolicy() { consul acl policy read -name "rtctl-svc-$1" >/dev/null 2>&1 || consul acl policy create -name "rtctl-svc-$1" -description "rtctl: service $1 reads its config" -rules "$(printf 'key_prefix "config/%s/" { policy = "read" } key_prefix "config/global/" { policy = "read" } agent_prefix "" { policy = "read" }' "$1")" >/dev/null; }
${serviceNames(p).map((s) => `svcpolicy ${sh(s)}`).join('\n')}
ensure() { has "$1" || consul acl token create -secret="$1" -description="$2" $3 >/dev/null; }
# Tokens made before a service had its policy get it added.
ensuresvc() { ensure "$2" "$3" "$4"; hassvc "$1" "$2" || consul acl token update -id "$(self "$2" -format=json | sed -n 's/.*"AccessorID": *"\\([^"]*\\)".*/\\1/p')" -policy-name="rtctl-svc-$1" -merge-policies -merge-service-identities >/dev/null; }
${tokens.map(([f, d, a]) => (f.startsWith('service-') ? `ensuresvc ${sh(f.slice(8, -6))} ` : 'ensure ') + `${sh(ref(f))} ${sh(d)} ${sh(a)}`).join('\n')}
`);
  return {
    type: 'exec', id: makeId('exec', 'consul-acl-tokens'), name: 'consul-acl-tokens', probe, want: 'ok', run: 'sh -s', stdin: script,
    description: `ACL tokens: DNS read, ${hosts.length} agents, ${serviceNames(p).length} services`, showState: true, stage: CONSUL_STAGE.acl,
  };
}

/** One exec per KV key (the value travels on stdin; secret values never appear in plans). */
function kvResources(p: Platform, acl: boolean): Resource[] {
  const env = (body: string) => (acl ? withMgmt(body) : `${PATHS}\n${body}`);
  const pairs = kvPairs(p);
  const out: Resource[] = pairs.map(([key, value]): ExecResource => {
    const secret = /\$\{(env|file):/.test(value);
    return {
      type: 'exec', id: makeId('exec', `consul-kv:${key}`), name: `consul-kv:${key}`, stage: CONSUL_STAGE.acl,
      // The probe holds the wanted value (resolved at gather time, sent on stdin, never printed) and says only whether it matches.
      probe: env(`cur=$(consul kv get ${sh(key)} 2>/dev/null) || { echo absent; exit 0; }; [ "$cur" = ${sh(value)} ] && echo same || echo different`),
      want: 'same',
      run: env(`set -e; v=$(cat); consul kv put ${sh(key)} "$v" >/dev/null
m=$(consul kv get ${MANAGED_KEYS} 2>/dev/null || true); printf '%s\\n%s\\n' "$m" ${sh(key)} | grep -v '^$' | sort -u | consul kv put ${MANAGED_KEYS} - >/dev/null`),
      stdin: value,
      description: secret ? `set ${key} = (sensitive)` : `set ${key} = ${JSON.stringify(value)}`,
      showState: true,
    };
  });
  // Keys rtctl wrote earlier and no longer declares: deleted; keys rtctl never wrote are never touched.
  const wanted = pairs.map(([k]) => k).join('\n');
  out.push({
    type: 'exec', id: makeId('exec', 'consul-kv-prune'), name: 'consul-kv-prune', stage: CONSUL_STAGE.acl,
    probe: env(`m=$(consul kv get ${MANAGED_KEYS} 2>/dev/null || true); extra=$(printf '%s\\n' "$m" | grep -v '^$' | grep -vxF ${sh(wanted || 'rtctl-no-key')} | tr '\\n' ' '); [ -n "$extra" ] && echo "delete: $extra" || echo none`),
    want: 'none',
    run: env(`set -e; m=$(consul kv get ${MANAGED_KEYS} 2>/dev/null || true)
for k in $(printf '%s\\n' "$m" | grep -v '^$' | grep -vxF ${sh(wanted || 'rtctl-no-key')}); do consul kv delete "$k" >/dev/null; done
printf '%s\\n' ${sh(wanted)} | grep -v '^$' | consul kv put ${MANAGED_KEYS} - >/dev/null`),
    description: 'remove KV keys no longer declared',
    showState: true,
  });
  return out;
}

function watchResources(p: Platform, host: Host): Resource[] {
  const c = consulDoc(p)!;
  const acl = c.acl ?? true;
  const out: Resource[] = [];
  for (const [i, w] of (c.watches ?? []).entries()) {
    if (!selectHosts(p.hosts, w.hosts).some((h) => h.name === host.name)) continue;
    const svc = w.prefix.split('/').filter(Boolean).pop() ?? w.name;
    const handler = `/usr/local/lib/rtctl/consul-watch-${w.name}`;
    // The watch hands the prefix as JSON on stdin; the handler turns it into {key: value} and signals the unit.
    out.push({
      type: 'file', id: makeId('file', handler), path: handler, owner: 'root', group: 'root', mode: '0755', sensitive: false,
      stage: CONSUL_STAGE.after, origin: { path: `consul/watches/${i}` },
      content: `#!/bin/sh
# rtctl: write KV prefix ${w.prefix} to ${w.file} and send SIG${w.signal ?? 'HUP'} to ${w.unit} (no restart).
set -eu
tmp=$(mktemp ${w.file}.XXXXXX)
PATH=/opt/consul/current:$PATH consul kv export ${sh(w.prefix)} > "$tmp"
chmod 0640 "$tmp"; mv -f "$tmp" ${sh(w.file)}
systemctl kill --kill-who=main -s ${w.signal ?? 'HUP'} ${sh(w.unit)} 2>/dev/null || true
`,
    });
    const unit = `consul-watch-${w.name}.service`;
    out.push({
      type: 'unit', id: makeId('unit', unit), name: unit, enabled: true, started: true, reload: false, stage: CONSUL_STAGE.after,
      sensitive: acl, origin: { path: `consul/watches/${i}` },
      content: `[Unit]
Description=rtctl: deliver Consul KV ${w.prefix} to ${w.unit}
After=${UNIT}
Requires=${UNIT}

[Service]
${acl ? `Environment=CONSUL_HTTP_TOKEN=${ref(`service-${svc}.token`)}\n` : ''}ExecStart=${BIN} watch -type=keyprefix -prefix=${w.prefix} ${handler}
Restart=always
RestartSec=2

[Install]
WantedBy=multi-user.target
`,
    });
  }
  return out;
}

export const RESOLVED_DROPIN = '/etc/systemd/resolved.conf.d/rtctl-consul.conf';
const RESOLVED_MARK = '/var/lib/rtctl/consul-dns.sha256';

export function renderResolvedDropin(): string {
  return `# Managed by rtctl (consul.dns_forwarding): *.consul is asked of the local Consul agent's DNS port.
[Resolve]
DNS=127.0.0.1:8600
Domains=~consul
DNSSEC=false
`;
}

/**
 * `consul.dns_forwarding`: every process on the host resolves *.consul (libpq, curl, a JVM…) through
 * systemd-resolved, which routes the `consul` domain to the agent (Consul's documented resolved set-up). Debian's
 * systemd-resolved package makes /etc/resolv.conf its stub (keeping the old file as /etc/.resolv.conf.systemd-resolved.bak).
 * There is no checker for resolved.conf: the gate is a lookup of consul.service.consul through the system resolver.
 */
function dnsForwarding(c: ConsulDoc): Resource[] {
  const o = { origin: { path: 'consul/dns_forwarding' }, stage: CONSUL_STAGE.after };
  const dir = '/etc/systemd/resolved.conf.d';
  const content = renderResolvedDropin();
  const sum = createHash('sha256').update(content).digest('hex');
  const lookup = 'getent hosts consul.service.consul >/dev/null';
  return [
    { type: 'directory', id: makeId('directory', dir), path: dir, owner: 'root', group: 'root', mode: '0755', ...o },
    // Written before the package: a first install starts resolved with it.
    { type: 'file', id: makeId('file', RESOLVED_DROPIN), path: RESOLVED_DROPIN, content, owner: 'root', group: 'root', mode: '0644', sensitive: false, ...o },
    { type: 'package', id: makeId('package', 'systemd-resolved'), name: 'systemd-resolved', ...o },
    {
      type: 'exec', id: makeId('exec', 'consul-dns-forwarding'), name: 'consul-dns-forwarding', ...o,
      description: 'systemd-resolved sends *.consul to the Consul agent',
      probe: `systemctl is-active -q systemd-resolved || { echo "systemd-resolved not running"; exit 0; }
[ "$(cat ${RESOLVED_MARK} 2>/dev/null)" = ${sum} ] || { echo "resolved not restarted with this configuration"; exit 0; }
${lookup} && echo ok || echo "consul.service.consul does not resolve"`,
      want: 'ok',
      run: `set -e; systemctl restart systemd-resolved; mkdir -p /var/lib/rtctl; echo ${sum} > ${RESOLVED_MARK}`,
      gate: { what: 'consul.service.consul resolves through the system resolver', timeoutSec: 30, intervalSec: 1, script: lookup },
    },
  ];
}

function registration(r: ConsulServiceDoc): ServiceRegistration {
  return { id: `${r.name}-${r.port}`, name: r.name, port: r.port, ...(r.tags ? { tags: r.tags } : {}), ...(r.meta ? { meta: r.meta } : {}), ...(r.check ? { check: r.check } : {}) };
}

export const consul: Recipe = {
  name: 'consul',

  resources(p, host) {
    const c = consulDoc(p);
    if (!c) return [];
    const artifact = p.artifacts[c.artifact];
    if (!artifact) return [];
    const srv = servers(p);
    const isServer = srv.some((s) => s.name === host.name);
    const stage = isServer ? CONSUL_STAGE.servers : CONSUL_STAGE.clients;
    const tls = c.tls ?? true;
    const acl = c.acl ?? true;
    const o = { origin: { path: 'consul' }, stage };
    const unitId = makeId('unit', UNIT);
    const checkDir = `d=$(mktemp -d) && cp -a ${ETC}/. "$d"/ && rm -f "$d"/.rtctl-* && cp {} "$d/consul.json" && ${BIN} validate "$d" >/dev/null; rc=$?; rm -rf "$d"; exit $rc`;
    const res: Resource[] = [
      { type: 'group', id: makeId('group', 'consul'), name: 'consul', system: true, ...o },
      { type: 'user', id: makeId('user', 'consul'), name: 'consul', system: true, home: DATA, shell: '/usr/sbin/nologin', groups: [], ...o },
      { type: 'directory', id: makeId('directory', ETC), path: ETC, owner: 'root', group: 'consul', mode: '0750', ...o },
      { type: 'directory', id: makeId('directory', DATA), path: DATA, owner: 'consul', group: 'consul', mode: '0750', ...o },
      // The binary is always current/consul, whatever the artifact is called.
      { type: 'release', id: makeId('release', '/opt/consul'), dir: '/opt/consul', artifact: { ...artifact, filename: 'consul' }, keep: 3, owner: 'root', notify: [unitId], ...o },
      {
        type: 'exec', id: makeId('exec', 'consul-cli'), name: 'consul-cli', probe: 'readlink /usr/local/bin/consul', want: BIN,
        run: `ln -sfn ${BIN} /usr/local/bin/.consul.tmp && mv -T /usr/local/bin/.consul.tmp /usr/local/bin/consul`, description: `link /usr/local/bin/consul → ${BIN}`, ...o,
      },
    ];
    if (tls) {
      const leaf = `${isServer ? 'server' : 'client'}-${host.name}`;
      res.push(
        { type: 'directory', id: makeId('directory', `${ETC}/tls`), path: `${ETC}/tls`, owner: 'root', group: 'consul', mode: '0750', ...o },
        { type: 'file', id: makeId('file', `${ETC}/tls/ca.pem`), path: `${ETC}/tls/ca.pem`, content: ref('ca.crt'), owner: 'root', group: 'consul', mode: '0644', sensitive: true, notify: [unitId], ...o },
        { type: 'file', id: makeId('file', `${ETC}/tls/agent.pem`), path: `${ETC}/tls/agent.pem`, content: ref(`${leaf}.crt`), owner: 'root', group: 'consul', mode: '0644', sensitive: true, notify: [unitId], ...o },
        { type: 'file', id: makeId('file', `${ETC}/tls/agent-key.pem`), path: `${ETC}/tls/agent-key.pem`, content: ref(`${leaf}.key`), owner: 'root', group: 'consul', mode: '0640', sensitive: true, notify: [unitId], ...o },
      );
    }
    if (acl && isServer) {
      res.push({ type: 'file', id: makeId('file', MGMT_FILE), path: MGMT_FILE, content: ref('management.token'), owner: 'root', group: 'consul', mode: '0640', sensitive: true, ...o });
    }
    res.push({
      type: 'file', id: makeId('file', `${ETC}/consul.json`), path: `${ETC}/consul.json`, content: `${JSON.stringify(agentConfig(p, host), null, 2)}\n`,
      owner: 'root', group: 'consul', mode: '0640', sensitive: true, check: checkDir, notify: [unitId], ...o,
    });
    res.push({
      // Config changes restart it; service definitions ask for a reload (`reload:unit:consul.service`).
      type: 'unit', id: unitId, name: UNIT, enabled: true, started: true, reload: false, sensitive: false, ...o,
      // Servers start together the first time (bootstrap_expect), but are restarted one at a time.
      ...(isServer
        ? { serial: 'restarts' as const, gate: clusterGate(srv.length, acl) }
        : { gate: { what: `${host.name} alive in consul members`, timeoutSec: 90, intervalSec: 2, script: `${PATHS}; consul members 2>&1 | awk '$1=="${host.name}" && $3=="alive" {ok=1} END {exit !ok}' || { ${AGENT_ERRORS}; exit 1; }` } }),
      content: `[Unit]
Description=Consul agent (rtctl)
Documentation=https://developer.hashicorp.com/consul/docs
Wants=network-online.target
After=network-online.target

[Service]
User=consul
Group=consul
ExecStart=${BIN} agent -config-dir=${ETC}
ExecReload=/bin/kill -HUP $MAINPID
KillMode=process
KillSignal=SIGTERM
Restart=on-failure
RestartSec=2
LimitNOFILE=65536
NoNewPrivileges=yes
ProtectSystem=full
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
`,
    });
    if (host.name === srv[0]?.name) {
      if (acl) res.push(aclSetup(p, p.hosts));
      res.push(...kvResources(p, acl));
    }
    for (const r of c.register ?? []) {
      if (selectHosts(p.hosts, r.hosts).some((h) => h.name === host.name)) res.push(...serviceDefinition(p, host, registration(r)));
    }
    res.push(...watchResources(p, host));
    if (c.dns_forwarding) res.push(...dnsForwarding(c));
    return res;
  },

  rules(p) {
    const c = consulDoc(p);
    const out: Problem[] = [];
    const cfg = p.doc.config as ConfigDoc | undefined;
    if (!c) {
      if (cfg) out.push({ path: ['config'], message: '`config` needs a `consul` section (the values live in Consul KV)', key: true });
      return out;
    }
    if (!p.artifacts[c.artifact]) out.push({ path: ['consul', 'artifact'], message: `unknown artifact "${c.artifact}"` });
    const names = new Set(['all', ...p.hosts.map((h) => h.name), ...p.hosts.flatMap((h) => h.labels)]);
    c.servers.forEach((s, i) => {
      if (!names.has(s)) out.push({ path: ['consul', 'servers', i], message: `"${s}" is not a declared host or label` });
    });
    const n = servers(p).length;
    if (c.servers.every((s) => names.has(s)) && n !== 3 && n !== 5) {
      out.push({ path: ['consul', 'servers'], message: `select 3 or 5 servers (a Raft quorum that survives a failure), not ${n}` });
    }
    // Record keys are not checked by the schema: check the KV key form here.
    const KEY = /^[a-z0-9][a-z0-9_.-]{0,63}$/;
    const bad = (k: string) => !KEY.test(k);
    for (const k of Object.keys(cfg?.global ?? {}).filter(bad)) out.push({ path: ['config', 'global', k], message: `"${k}" is not a valid key: lower-case letters, digits, \`.\`, \`_\`, \`-\` (at most 64)`, key: true });
    for (const [svc, kv] of Object.entries(cfg?.services ?? {})) {
      if (bad(svc)) out.push({ path: ['config', 'services', svc], message: `"${svc}" is not a valid service name for KV: lower-case letters, digits, \`.\`, \`_\`, \`-\``, key: true });
      for (const k of Object.keys(kv).filter(bad)) out.push({ path: ['config', 'services', svc, k], message: `"${k}" is not a valid key: lower-case letters, digits, \`.\`, \`_\`, \`-\` (at most 64)`, key: true });
    }
    (c.watches ?? []).forEach((w, i) => {
      const svc = w.prefix.split('/').filter(Boolean).pop() ?? '';
      if ((c.acl ?? true) && !(cfg?.services && svc in cfg.services)) {
        out.push({ path: ['consul', 'watches', i, 'prefix'], message: `with ACLs the watch reads with the token of service "${svc}": declare it under config.services` });
      }
    });
    return out;
  },

  secrets(p) {
    const c = consulDoc(p);
    if (!c) return [];
    const random = (bytes: number, fmt: 'base64' | 'uuid'): GeneratedSecret['generate'] => async () => {
      const { randomBytes } = await import('node:crypto');
      const b = randomBytes(bytes);
      return fmt === 'uuid' ? uuid(b) : b.toString('base64');
    };
    const out: GeneratedSecret[] = [];
    if (c.encrypt ?? true) out.push({ path: `${SECRETS}/gossip.key`, generate: random(32, 'base64') });
    if (c.acl ?? true) {
      out.push({ path: `${SECRETS}/management.token`, generate: random(16, 'uuid') }, { path: `${SECRETS}/dns.token`, generate: random(16, 'uuid') });
      for (const h of p.hosts) out.push({ path: `${SECRETS}/agent-${h.name}.token`, generate: random(16, 'uuid') });
      for (const s of serviceNames(p)) out.push({ path: `${SECRETS}/service-${s}.token`, generate: random(16, 'uuid') });
    }
    if (c.tls ?? true) {
      const dc = c.datacenter ?? 'dc1';
      const srv = new Set(servers(p).map((h) => h.name));
      out.push(...caSecrets(SECRETS, `rtctl Consul CA (${p.name})`));
      for (const h of p.hosts) {
        const role = srv.has(h.name) ? 'server' : 'client';
        out.push(...leafSecrets(SECRETS, { name: `${role}-${h.name}`, commonName: `${role}.${dc}.consul`, dns: [`${role}.${dc}.consul`, 'localhost'], ips: [h.address, '127.0.0.1'] }));
      }
    }
    return out;
  },
};
