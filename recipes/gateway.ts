/**
 * The API gateway (section `gateway`). Engine `haproxy`: the routes, consumers and plugins become one HAProxy
 * frontend on each gateway host (composed into haproxy.cfg by recipes/haproxy.ts), plus an API-key map; JWT
 * secrets reach HAProxy through `setenv` in a separate sensitive file so haproxy.cfg itself holds no secret and
 * its diffs stay visible. Engine `kong`: recipes/kong.ts. Shared here: host selection, plugin merging, the
 * section's validation rules, and service backends (also used by load-balancer listeners).
 */
import type { Host, Platform } from '../src/model/platform.js';
import { selectHosts } from '../src/model/platform.js';
import type { Resource } from '../src/model/resources.js';
import type { Problem } from '../src/config/validate.js';
import type { GatewayDoc, PluginsDoc, RouteDoc, ServiceDoc } from '../src/model/sections/gateway.js';
import type { Recipe } from './types.js';
import { kongResources, kongRules } from './kong.js';

export const GW_DIR = '/etc/haproxy/gateway';
export const APIKEYS_MAP = `${GW_DIR}/apikeys.map`;
export const HEALTH_URI = '/rtctl-health';
export const DEFAULT_GW_PORT = 8000;

/** Hosts the gateway runs on: its own selector, else the load balancer's. */
export function gatewayHosts(p: Platform): Host[] {
  const gw = p.doc.gateway;
  if (!gw) return [];
  const sel = gw.hosts ?? p.doc.loadbalancer?.hosts;
  return sel ? selectHosts(p.hosts, sel) : [];
}

export const onHost = (hosts: Host[], h: Host) => hosts.some((x) => x.name === h.name);

/** Kong's plugin order (higher priority runs first); the haproxy engine renders plugins in the same order. */
export const PLUGIN_ORDER = ['cors', 'jwt', 'key-auth', 'request-size-limiting', 'rate-limiting'] as const;
export type PluginName = (typeof PLUGIN_ORDER)[number];

/** Global plugins, replaced per name by the route's own (as in Kong). */
export function effectivePlugins(gw: GatewayDoc, route: RouteDoc): PluginsDoc {
  return { ...(gw.plugins ?? {}), ...(route.plugins ?? {}) };
}

export const PERIODS = { second: 1, minute: 60, hour: 3600 } as const;
export const UNIT_BYTES = { bytes: 1, kilobytes: 1024, megabytes: 1048576 } as const;

/** Routes most specific first: with hosts before without, longer paths first, with methods first. */
export function orderedRoutes(routes: RouteDoc[]): RouteDoc[] {
  const longest = (r: RouteDoc) => Math.max(0, ...(r.paths ?? []).map((x) => x.length));
  return routes
    .map((r, i) => ({ r, i }))
    .sort((a, b) => Number(!!b.r.hosts) - Number(!!a.r.hosts) || longest(b.r) - longest(a.r) || Number(!!b.r.methods) - Number(!!a.r.methods) || a.i - b.i)
    .map((x) => x.r);
}

/** One HAProxy backend for a service: static servers or Consul DNS SRV slots, with active health checks. */
export function renderServiceBackend(name: string, s: ServiceDoc): string {
  const h = s.health ?? {};
  const lines = [
    `backend svc_${name}`,
    '  balance roundrobin',
    `  option httpchk GET ${h.path ?? '/'}`,
    '  http-check expect rstatus ^[23]',
    ...(s.timeout ? [`  timeout server ${s.timeout}`] : []),
    `  default-server check inter ${h.interval ?? '2s'} fall ${h.fall ?? 3} rise ${h.rise ?? 2}`,
  ];
  if (s.consul) {
    // A name starting with `_` is an SRV query: addresses and ports come from Consul, slots fill and empty
    // without a reload; `none` lets HAProxy start while the name doesn't resolve yet.
    lines.push(`  server-template ${name} ${s.max_instances ?? 10} _${s.consul}._tcp.service.consul resolvers consul resolve-prefer ipv4 init-addr last,libc,none`);
  } else {
    (s.servers ?? []).forEach((srv, i) => lines.push(`  server ${name}${i + 1} ${srv}`));
  }
  return `${lines.join('\n')}\n`;
}

export const RESOLVERS = `resolvers consul
  nameserver consul 127.0.0.1:8600
  accepted_payload_size 8192
  hold valid 5s
  resolve_retries 3
  timeout resolve 1s
  timeout retry 1s
`;

/** Environment variable names carrying JWT secrets into HAProxy (set in secrets.cfg). */
export function jwtEnvName(consumer: number, secret: number): string {
  return `RTCTL_JWT_${consumer}_${secret}`;
}

const json401 = (msg: string) => `http-request return status 401 content-type application/json string '{"message":"${msg}"}'`;

/** The gateway frontend and its stick tables, for one gateway host. */
export function renderHaproxyGateway(p: Platform, host: Host): string {
  const gw = p.doc.gateway!;
  const port = gw.port ?? DEFAULT_GW_PORT;
  const fe: string[] = [
    'frontend gateway',
    `  bind ${host.address}:${port}`,
    `  monitor-uri ${HEALTH_URI}`,
    '  option forwardfor',
  ];
  const routes = orderedRoutes(gw.routes);
  const plugins = new Map(routes.map((r) => [r.name, effectivePlugins(gw, r)]));
  if ([...plugins.values()].some((x) => x['request-size-limiting'])) fe.push('  option http-buffer-request');
  const tables: string[] = [];
  fe.push(
    '  http-request del-header X-Consumer-Username',
    '  http-request set-var(txn.host) req.hdr(host),field(1,:),lower',
    // Behind the load balancer the client is the last X-Forwarded-For entry it added.
    '  http-request set-var(txn.client_ip) src',
    '  http-request set-var(txn.client_ip) req.hdr_ip(x-forwarded-for,-1) if { req.hdr(x-forwarded-for) -m found }',
    '  # routes, most specific first; the first match wins',
  );
  for (const r of routes) {
    const conds = ['!{ var(txn.route) -m found }'];
    if (r.hosts) conds.push(`{ var(txn.host) -m str ${r.hosts.map((x) => x.toLowerCase()).join(' ')} }`);
    if (r.paths) conds.push(`{ path_beg ${r.paths.join(' ')} }`);
    if (r.methods) conds.push(`{ method ${r.methods.join(' ')} }`);
    fe.push(`  http-request set-var(txn.route) str(${r.name}) if ${conds.join(' ')}`);
  }
  fe.push(`  http-request return status 404 content-type application/json string '{"message":"no Route matched with those values"}' if !{ var(txn.route) -m found }`);
  for (const r of routes) {
    const pl = plugins.get(r.name)!;
    const R = `{ var(txn.route) -m str ${r.name} }`;
    const cors = pl.cors;
    if (cors) {
      fe.push(`  # route ${r.name}: cors`);
      const any = cors.origins.includes('*');
      fe.push(`  http-request set-var(txn.cors_origin) req.hdr(origin) if ${R} { req.hdr(origin) ${any ? '-m found' : `-m str ${cors.origins.join(' ')}`} }`);
      const hdrs = [
        `hdr Access-Control-Allow-Origin "%[var(txn.cors_origin)]"`,
        `hdr Access-Control-Allow-Methods "${(cors.methods ?? ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE', 'OPTIONS']).join(',')}"`,
        ...(cors.headers ? [`hdr Access-Control-Allow-Headers "${cors.headers.join(',')}"`] : []),
        ...(cors.max_age !== undefined ? [`hdr Access-Control-Max-Age ${cors.max_age}`] : []),
        ...(cors.credentials ? ['hdr Access-Control-Allow-Credentials true'] : []),
        'hdr Vary Origin',
      ];
      fe.push(`  http-request return status 204 ${hdrs.join(' ')} if ${R} METH_OPTIONS { var(txn.cors_origin) -m found } { req.hdr(access-control-request-method) -m found }`);
    }
    if (pl.jwt) {
      fe.push(`  # route ${r.name}: jwt (signature with the issuer's secret, alg HS256, exp in the future)`);
      fe.push(`  http-request set-var(txn.jwt) http_auth_bearer if ${R}`);
      fe.push(`  ${json401('Unauthorized')} if ${R} !{ var(txn.jwt) -m found }`);
      fe.push(`  http-request set-var(txn.jwt_alg) var(txn.jwt),jwt_header_query('$.alg') if ${R}`);
      fe.push(`  http-request set-var(txn.jwt_iss) var(txn.jwt),jwt_payload_query('$.iss') if ${R}`);
      fe.push(`  http-request set-var(txn.jwt_exp) var(txn.jwt),jwt_payload_query('$.exp','int') if ${R}`);
      fe.push(`  http-request set-var(txn.now) date() if ${R}`);
      (gw.consumers ?? []).forEach((c, ci) =>
        (c.jwt_secrets ?? []).forEach((s, si) => {
          fe.push(`  http-request set-var(txn.jwt_consumer) str(${c.username}) if ${R} { var(txn.jwt_alg) -m str HS256 } { var(txn.jwt_iss) -m str ${s.key} } { var(txn.jwt),jwt_verify("HS256","\${${jwtEnvName(ci, si)}}") -m int 1 }`);
        }),
      );
      fe.push(`  ${json401('Invalid signature')} if ${R} !{ var(txn.jwt_consumer) -m found }`);
      fe.push(`  ${json401('token expired')} if ${R} !{ var(txn.jwt_exp) -m found } || ${R} { var(txn.jwt_exp),sub(txn.now) -m int lt 0 }`);
      fe.push(`  http-request set-var(txn.consumer) var(txn.jwt_consumer) if ${R}`);
    }
    if (pl['key-auth']) {
      fe.push(`  # route ${r.name}: key-auth`);
      for (const k of pl['key-auth'].key_names ?? ['apikey']) fe.push(`  http-request set-var(txn.apikey) req.hdr(${k}) if ${R} !{ var(txn.apikey) -m found }`);
      fe.push(`  ${json401('No API key found in request')} if ${R} !{ var(txn.apikey) -m found }`);
      fe.push(`  http-request set-var(txn.key_consumer) var(txn.apikey),map(${APIKEYS_MAP}) if ${R}`);
      fe.push(`  ${json401('Invalid authentication credentials')} if ${R} !{ var(txn.key_consumer) -m found }`);
      fe.push(`  http-request set-var(txn.consumer) var(txn.key_consumer) if ${R}`);
    }
    const size = pl['request-size-limiting'];
    if (size) {
      const max = size.allowed_payload_size * UNIT_BYTES[size.size_unit ?? 'megabytes'];
      fe.push(`  # route ${r.name}: request-size-limiting (${max} bytes)`);
      fe.push(`  http-request return status 413 content-type application/json string '{"message":"Request size limit exceeded"}' if ${R} { req.hdr_val(content-length) gt ${max} } || ${R} { req.body_size gt ${max} }`);
    }
    const rl = pl['rate-limiting'];
    if (rl) {
      fe.push(`  # route ${r.name}: rate-limiting by ${rl.limit_by ?? 'consumer'} (counters per gateway host)`);
      fe.push(`  http-request set-var(txn.rl_key) var(txn.client_ip) if ${R}`);
      if ((rl.limit_by ?? 'consumer') === 'consumer') fe.push(`  http-request set-var(txn.rl_key) var(txn.consumer) if ${R} { var(txn.consumer) -m found }`);
      let sc = 0;
      for (const [period, secs] of Object.entries(PERIODS) as [keyof typeof PERIODS, number][]) {
        const limit = rl[period];
        if (limit === undefined) continue;
        const table = `rl_${r.name}_${period}`;
        tables.push(`backend ${table}\n  stick-table type string len 128 size 100k expire ${secs}s store http_req_rate(${secs}s)\n`);
        fe.push(`  http-request track-sc${sc} var(txn.rl_key) table ${table} if ${R}`);
        fe.push(`  http-request return status 429 content-type application/json string '{"message":"API rate limit exceeded"}' hdr Retry-After ${secs} if ${R} { sc_http_req_rate(${sc}) gt ${limit} }`);
        sc++;
      }
    }
  }
  fe.push('  http-request set-header X-Consumer-Username %[var(txn.consumer)] if { var(txn.consumer) -m found }');
  if (routes.some((r) => plugins.get(r.name)!.cors)) {
    fe.push('  http-response set-header Access-Control-Allow-Origin %[var(txn.cors_origin)] if { var(txn.cors_origin) -m found }');
    fe.push('  http-response add-header Vary Origin if { var(txn.cors_origin) -m found }');
  }
  for (const r of routes) fe.push(`  use_backend svc_${r.service} if { var(txn.route) -m str ${r.name} }`);
  return [`${fe.join('\n')}\n`, ...tables].join('\n');
}

/** The sensitive file giving HAProxy its JWT secrets as environment variables (always present, maybe empty). */
export function renderHaproxySecrets(p: Platform): string {
  const lines = ['# rtctl: secrets for haproxy.cfg (as environment variables); do not edit', 'global'];
  (p.doc.gateway?.consumers ?? []).forEach((c, ci) =>
    (c.jwt_secrets ?? []).forEach((s, si) => lines.push(`  setenv ${jwtEnvName(ci, si)} "${s.secret}"`)),
  );
  return `${lines.join('\n')}\n`;
}

/** `key consumer` lines for HAProxy's map. */
export function renderApiKeys(p: Platform): string {
  const lines: string[] = [];
  for (const c of p.doc.gateway?.consumers ?? []) for (const k of c.keyauth_credentials ?? []) lines.push(`${k.key} ${c.username}`);
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** Two routes collide when every request one matches could also match the other with equal specificity. */
function overlap(a?: string[], b?: string[], ci = false): boolean {
  if (!a || !b) return !a && !b;
  const norm = (x: string) => (ci ? x.toLowerCase() : x);
  return a.some((x) => b.map(norm).includes(norm(x)));
}

export function gatewayRules(p: Platform): Problem[] {
  const gw = p.doc.gateway;
  if (!gw) return [];
  const out: Problem[] = [];
  const services = Object.keys(gw.services);
  for (const [name, s] of Object.entries(gw.services)) {
    if (!s.servers === !s.consul) out.push({ path: ['gateway', 'services', name], message: `service "${name}" needs exactly one of \`servers\` or \`consul\``, key: true });
  }
  gw.routes.forEach((r, i) => {
    if (!services.includes(r.service)) {
      out.push({ path: ['gateway', 'routes', i, 'service'], message: `unknown service "${r.service}"${services.length ? ` (known: ${services.join(', ')})` : ' (gateway.services is empty)'}` });
    }
    if (!r.hosts && !r.paths) out.push({ path: ['gateway', 'routes', i], message: `route "${r.name}" needs \`hosts\` or \`paths\``, key: false });
    for (let j = 0; j < i; j++) {
      const o = gw.routes[j]!;
      if (o.name === r.name) out.push({ path: ['gateway', 'routes', i, 'name'], message: `duplicate route name "${r.name}" (first at gateway/routes/${j})` });
      else if (overlap(r.hosts, o.hosts, true) && overlap(r.paths, o.paths) && (!r.methods || !o.methods || overlap(r.methods, o.methods))) {
        out.push({ path: ['gateway', 'routes', i], message: `route "${r.name}" collides with route "${o.name}" (gateway/routes/${j}): same host, path and method` });
      }
    }
    const rl = effectivePlugins(gw, r)['rate-limiting'];
    if (rl) checkRateLimit(rl, r.plugins?.['rate-limiting'] ? ['gateway', 'routes', i, 'plugins', 'rate-limiting'] : ['gateway', 'plugins', 'rate-limiting'], out);
    const pl = effectivePlugins(gw, r);
    if (pl.jwt && !(gw.consumers ?? []).some((c) => c.jwt_secrets?.length)) out.push({ path: ['gateway', 'routes', i], message: `route "${r.name}" uses jwt but no consumer has jwt_secrets` });
  });
  const seen = new Map<string, number>();
  (gw.consumers ?? []).forEach((c, i) => {
    if (seen.has(c.username)) out.push({ path: ['gateway', 'consumers', i, 'username'], message: `duplicate consumer "${c.username}" (first at gateway/consumers/${seen.get(c.username)})` });
    seen.set(c.username, i);
  });
  if (gw.engine === 'kong') out.push(...kongRules(p));
  return dedupe(out);
}

function dedupe(ps: Problem[]): Problem[] {
  const k = new Set<string>();
  return ps.filter((x) => {
    const key = `${x.path.join('/')}\t${x.message}`;
    if (k.has(key)) return false;
    k.add(key);
    return true;
  });
}

function checkRateLimit(rl: NonNullable<PluginsDoc['rate-limiting']>, path: (string | number)[], out: Problem[]) {
  const set = (Object.keys(PERIODS) as (keyof typeof PERIODS)[]).filter((k) => rl[k] !== undefined);
  if (set.length === 0) out.push({ path, message: 'rate-limiting needs at least one of second, minute, hour' });
  for (let a = 0; a < set.length; a++) for (let b = a + 1; b < set.length; b++) {
    if (rl[set[b]!]! < rl[set[a]!]!) out.push({ path: [...path, set[b]!], message: `the limit per ${set[b]} (${rl[set[b]!]}) can't be lower than the limit per ${set[a]} (${rl[set[a]!]})` });
  }
}

export const gateway: Recipe = {
  name: 'gateway',
  resources(p: Platform, host: Host): Resource[] {
    const gw = p.doc.gateway;
    if (!gw || !onHost(gatewayHosts(p), host)) return [];
    // Engine haproxy: the frontend is part of haproxy.cfg (recipes/haproxy.ts); the map and secrets are there too.
    return gw.engine === 'kong' ? kongResources(p, host) : [];
  },
  rules: gatewayRules,
};
