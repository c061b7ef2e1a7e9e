/**
 * Gateway engine `kong`: Kong 3.x in DB-less mode. Renders kong.conf (database off, Admin API on 127.0.0.1 only),
 * the declarative configuration (`_format_version: "3.0"`) from the same routes, consumers and plugins as the
 * haproxy engine, a systemd unit, and an apply step that POSTs the file to the Admin API's /config. Kong can't
 * be installed in the lab: the rendered configuration is checked against Kong's entity rules (kong-schema.ts)
 * in `rtctl validate`/`plan`; Kong's runtime behaviour is not tested here (see docs/frontdoor.md).
 */
import { Value } from '@sinclair/typebox/value';
import { stringify } from 'yaml';
import type { Host, Platform } from '../src/model/platform.js';
import { makeId, type Resource } from '../src/model/resources.js';
import type { Problem } from '../src/config/validate.js';
import { hasRefs } from '../src/secrets.js';
import type { PluginsDoc } from '../src/model/sections/gateway.js';
import { DEFAULT_GW_PORT, PERIODS } from './gateway.js';
import { KONG_PLUGIN_CONFIG, KongDeclarative } from './kong-schema.js';

export const KONG_CONF = '/etc/kong/kong.conf';
export const KONG_YML = '/etc/kong/kong.yml';
const UNIT = 'kong.service';

type KPlugin = { name: string; instance_name?: string; route?: string; config: Record<string, unknown> };

function pluginsFor(pl: PluginsDoc, scope: string): KPlugin[] {
  const out: KPlugin[] = [];
  const add = (name: string, config: Record<string, unknown>) => out.push({ name, instance_name: `${scope}-${name}`, config });
  if (pl['key-auth']) add('key-auth', { key_names: pl['key-auth'].key_names ?? ['apikey'], hide_credentials: false });
  if (pl.jwt) add('jwt', { claims_to_verify: ['exp'], key_claim_name: 'iss' });
  const rl = pl['rate-limiting'];
  if (rl) {
    const limits = Object.fromEntries(Object.keys(PERIODS).filter((k) => rl[k as keyof typeof PERIODS] !== undefined).map((k) => [k, rl[k as keyof typeof PERIODS]]));
    // `local`: DB-less Kong rejects `cluster`; counters are per node, like the haproxy engine's stick tables.
    add('rate-limiting', { ...limits, limit_by: rl.limit_by ?? 'consumer', policy: 'local', error_code: 429 });
  }
  const rs = pl['request-size-limiting'];
  if (rs) add('request-size-limiting', { allowed_payload_size: rs.allowed_payload_size, size_unit: rs.size_unit ?? 'megabytes' });
  const c = pl.cors;
  if (c) add('cors', { origins: c.origins, ...(c.methods ? { methods: c.methods } : {}), ...(c.headers ? { headers: c.headers } : {}), credentials: c.credentials ?? false, ...(c.max_age !== undefined ? { max_age: c.max_age } : {}) });
  return out;
}

/** The declarative configuration as data (secret values stay references). */
export function renderKongDeclarative(p: Platform): Record<string, unknown> {
  const gw = p.doc.gateway!;
  const services: Record<string, unknown>[] = [];
  const upstreams: Record<string, unknown>[] = [];
  for (const [name, s] of Object.entries(gw.services)) {
    const svc: Record<string, unknown> = { name, protocol: 'http', port: 80, ...(s.timeout ? { read_timeout: ms(s.timeout) } : {}) };
    if (s.consul) {
      // Resolved through Consul DNS (kong.conf dns_resolver): the SRV record gives addresses and ports.
      svc.host = `${s.consul}.service.consul`;
    } else {
      svc.host = `${name}.upstream`;
      const h = s.health ?? {};
      upstreams.push({
        name: `${name}.upstream`, algorithm: 'round-robin',
        targets: (s.servers ?? []).map((t) => ({ target: t, weight: 100 })),
        healthchecks: { active: { type: 'http', http_path: h.path ?? '/', healthy: { interval: ms(h.interval ?? '2s') / 1000, successes: h.rise ?? 2 }, unhealthy: { interval: ms(h.interval ?? '2s') / 1000, http_failures: h.fall ?? 3, tcp_failures: h.fall ?? 3, timeouts: h.fall ?? 3 } } },
      });
    }
    services.push(svc);
  }
  const routes = gw.routes.map((r) => ({
    name: r.name, service: { name: r.service }, protocols: ['http', 'https'],
    ...(r.hosts ? { hosts: r.hosts } : {}), ...(r.paths ? { paths: r.paths } : {}), ...(r.methods ? { methods: r.methods } : {}),
    // The haproxy engine forwards the path unchanged; Kong's default would strip the matched prefix.
    strip_path: false, preserve_host: true,
  }));
  const plugins = [
    ...pluginsFor(gw.plugins ?? {}, 'global'),
    ...gw.routes.flatMap((r) => pluginsFor(r.plugins ?? {}, r.name).map((x) => ({ ...x, route: r.name }))),
  ];
  const consumers = (gw.consumers ?? []).map((c) => ({
    username: c.username,
    ...(c.keyauth_credentials ? { keyauth_credentials: c.keyauth_credentials.map((k) => ({ key: k.key })) } : {}),
    ...(c.jwt_secrets ? { jwt_secrets: c.jwt_secrets.map((s) => ({ key: s.key, algorithm: s.algorithm ?? 'HS256', secret: s.secret })) } : {}),
  }));
  return { _format_version: '3.0', _transform: true, services, upstreams, routes, consumers, plugins };
}

function ms(d: string): number {
  const m = /^([0-9]+)(ms|s|m|h)$/.exec(d)!;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] as 'ms']!;
}

export function renderKongYaml(p: Platform): string {
  return `# rtctl: Kong declarative configuration; do not edit\n${stringify(renderKongDeclarative(p), { lineWidth: 0 })}`;
}

export function renderKongConf(p: Platform, host: Host): string {
  return `# rtctl: rendered for ${host.name}
database = off
declarative_config = ${KONG_YML}
proxy_listen = ${host.address}:${p.doc.gateway!.port ?? DEFAULT_GW_PORT}
admin_listen = 127.0.0.1:8001
status_listen = 127.0.0.1:8007
dns_resolver = 127.0.0.1:8600
dns_order = LAST,SRV,A,CNAME
`;
}

export const KONG_UNIT = `[Unit]
Description=Kong gateway (rtctl, DB-less)
After=network-online.target
Wants=network-online.target

[Service]
Type=forking
ExecStartPre=/usr/local/bin/kong prepare -p /usr/local/kong -c ${KONG_CONF}
ExecStart=/usr/local/bin/kong start -c ${KONG_CONF}
ExecReload=/usr/local/bin/kong reload -c ${KONG_CONF}
ExecStop=/usr/local/bin/kong stop
PIDFile=/usr/local/kong/pids/nginx.pid
Restart=on-failure
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
`;

/** Applies the file on disk through the Admin API (only /config changes state in DB-less mode). */
const APPLY = `set -eu
i=0
while :; do
  code=$(curl -s -o /tmp/rtctl-kong-config.out -w '%{http_code}' -X POST 'http://127.0.0.1:8001/config?check_hash=1&flatten_errors=1' -F "config=@${KONG_YML}") || code=000
  case "$code" in
    201|304) break;;
    429|000) i=$((i+1)); [ $i -lt 30 ] || { echo "Kong Admin API not ready (HTTP $code)" >&2; exit 1; }; sleep 1;;
    *) echo "Kong rejected ${KONG_YML} (HTTP $code):" >&2; head -c 4000 /tmp/rtctl-kong-config.out >&2; exit 1;;
  esac
done
mkdir -p /var/lib/rtctl/kong && sha256sum < ${KONG_YML} > /var/lib/rtctl/kong/applied`;

export function kongResources(p: Platform, host: Host): Resource[] {
  const origin = { path: 'gateway' };
  const unitId = makeId('unit', UNIT);
  const yml = renderKongYaml(p);
  return [
    { type: 'directory', id: makeId('directory', '/etc/kong'), path: '/etc/kong', owner: 'root', group: 'root', mode: '0750', origin },
    { type: 'file', id: makeId('file', KONG_CONF), path: KONG_CONF, content: renderKongConf(p, host), sensitive: false, owner: 'root', group: 'root', mode: '0644', notify: [unitId], origin },
    // Written to disk too, so a restart comes back with the same configuration; checked offline by Kong.
    { type: 'file', id: makeId('file', KONG_YML), path: KONG_YML, content: yml, sensitive: hasRefs(yml), owner: 'root', group: 'root', mode: '0600', check: `kong config parse {} -c ${KONG_CONF}`, origin },
    { type: 'unit', id: unitId, name: UNIT, content: KONG_UNIT, enabled: true, started: true, reload: true, sensitive: false, origin },
    {
      type: 'exec', id: makeId('exec', 'kong-config'), name: 'kong-config',
      probe: `[ "$(sha256sum < ${KONG_YML} 2>/dev/null)" = "$(cat /var/lib/rtctl/kong/applied 2>/dev/null)" ] && echo applied || echo pending`,
      want: 'applied', run: APPLY, description: `POST ${KONG_YML} to Kong's Admin API /config`, origin,
    },
  ];
}

/** A schema error in words: the allowed values for an enumeration, else TypeBox's message. */
function errorText(e: { message: string; value: unknown; schema: unknown }): string {
  const anyOf = (e.schema as { anyOf?: { const?: unknown }[] }).anyOf;
  if (anyOf && anyOf.every((x) => 'const' in x)) return `${JSON.stringify(e.value)} is not one of ${anyOf.map((x) => JSON.stringify(x.const)).join(', ')}`;
  return e.message.charAt(0).toLowerCase() + e.message.slice(1);
}

/** Checks the rendered declarative configuration against Kong's entity rules; problems point at `gateway`. */
export function kongProblems(decl: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const e of Value.Errors(KongDeclarative, decl)) out.push(`${e.path || '/'}: ${errorText(e)}`);
  const d = decl as { services?: { name: string }[]; routes?: Record<string, unknown>[]; consumers?: Record<string, unknown>[]; plugins?: KPlugin[]; upstreams?: { name: string }[] };
  const names = (xs: { name?: unknown }[] | undefined, what: string) => {
    const seen = new Set<unknown>();
    for (const x of xs ?? []) { if (seen.has(x.name)) out.push(`${what} name "${String(x.name)}" is not unique`); seen.add(x.name); }
  };
  names(d.services, 'service'); names(d.routes, 'route'); names(d.upstreams, 'upstream');
  const svc = new Set((d.services ?? []).map((s) => s.name));
  for (const r of d.routes ?? []) {
    if (!['methods', 'hosts', 'headers', 'paths', 'snis'].some((k) => Array.isArray(r[k]) ? (r[k] as unknown[]).length > 0 : r[k] !== undefined)) out.push(`route "${String(r.name)}": an http route needs at least one of methods, hosts, headers, paths, snis`);
    const ref = r.service as { name?: string } | undefined;
    if (ref && !svc.has(ref.name ?? '')) out.push(`route "${String(r.name)}": service "${ref.name}" does not exist`);
  }
  for (const c of d.consumers ?? []) if (c.username === undefined && c.custom_id === undefined) out.push('consumer: needs username or custom_id');
  const routes = new Set((d.routes ?? []).map((r) => r.name));
  for (const pl of d.plugins ?? []) {
    const schema = KONG_PLUGIN_CONFIG[pl.name];
    if (schema) for (const e of Value.Errors(schema, pl.config)) out.push(`plugin ${pl.name}: config${e.path}: ${errorText(e)}`);
    if (pl.route && !routes.has(pl.route)) out.push(`plugin ${pl.name}: route "${pl.route}" does not exist`);
    if (pl.name === 'rate-limiting') {
      const order = ['second', 'minute', 'hour', 'day', 'month', 'year'].filter((k) => pl.config[k] !== undefined);
      if (order.length === 0) out.push('plugin rate-limiting: at least one of second, minute, hour, day, month, year is required');
      for (let i = 1; i < order.length; i++) if ((pl.config[order[i]!] as number) < (pl.config[order[i - 1]!] as number)) out.push(`plugin rate-limiting: the limit for ${order[i]} must not be lower than for ${order[i - 1]}`);
      if (pl.config.limit_by === 'header' && !pl.config.header_name) out.push('plugin rate-limiting: limit_by header needs header_name');
      if (pl.config.limit_by === 'path' && !pl.config.path) out.push('plugin rate-limiting: limit_by path needs path');
    }
    if (pl.name === 'jwt' || pl.name === 'key-auth') {
      const field = pl.name === 'jwt' ? 'jwt_secrets' : 'keyauth_credentials';
      if (!(d.consumers ?? []).some((c) => Array.isArray(c[field]) && (c[field] as unknown[]).length > 0)) out.push(`plugin ${pl.name}: no consumer has ${field}`);
    }
  }
  return out;
}

export function kongRules(p: Platform): Problem[] {
  return kongProblems(renderKongDeclarative(p)).map((m) => ({ path: ['gateway', 'engine'], message: `the Kong configuration rendered from this section breaks Kong's rules: ${m}` }));
}
