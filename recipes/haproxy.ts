/**
 * HAProxy (section `loadbalancer`, plus the gateway frontend when `gateway.engine` is `haproxy`): Debian's
 * package, one rendered haproxy.cfg checked with `haproxy -c` on the host before it replaces the old one, and a
 * master-worker unit (`-Ws`, reload = USR2) so that configuration changes are hitless reloads.
 */
import type { Host, Platform } from '../src/model/platform.js';
import { selectHosts } from '../src/model/platform.js';
import { makeId, type Resource } from '../src/model/resources.js';
import type { Problem } from '../src/config/validate.js';
import { hasRefs } from '../src/secrets.js';
import type { GeneratedSecret } from './types.js';
import type { Recipe } from './types.js';
import {
  APIKEYS_MAP, DEFAULT_GW_PORT, GW_DIR, HEALTH_URI, RESOLVERS, gatewayHosts, onHost, renderApiKeys, renderHaproxyGateway, renderHaproxySecrets, renderServiceBackend,
} from './gateway.js';
import { caSecrets, leafSecret } from './haproxy-certs.js';

export const CFG = '/etc/haproxy/haproxy.cfg';
export const SECRETS_CFG = '/etc/haproxy/secrets.cfg';
export const CERT_DIR = '/etc/haproxy/certs';
const UNIT = 'haproxy.service';

export function lbHosts(p: Platform): Host[] {
  const lb = p.doc.loadbalancer;
  return lb ? selectHosts(p.hosts, lb.hosts) : [];
}

/** The VIP's address and prefix length. */
export function parseVip(vip: string): { address: string; prefix: number } {
  const [address, prefix] = vip.split('/');
  return { address: address!, prefix: Number(prefix) };
}

function ipToInt(ip: string): number | undefined {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) return undefined;
  return ((parts[0]! << 24) >>> 0) + (parts[1]! << 16) + (parts[2]! << 8) + parts[3]!;
}

export function inSubnet(ip: string, net: string, prefix: number): boolean {
  const a = ipToInt(ip);
  const b = ipToInt(net);
  if (a === undefined || b === undefined) return false;
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return ((a & mask) >>> 0) === ((b & mask) >>> 0);
}

const certSecretPath = (listener: string) => `${CERT_SECRETS}/${listener}.pem`;
const onLb = (p: Platform, h: Host) => onHost(lbHosts(p), h);
const runsGateway = (p: Platform, h: Host) => p.doc.gateway?.engine === 'haproxy' && onHost(gatewayHosts(p), h);

export function renderHaproxyCfg(p: Platform, host: Host): string {
  const lb = p.doc.loadbalancer;
  const gw = p.doc.gateway;
  const t = lb?.timeouts ?? {};
  const out: string[] = [];
  out.push(`# rtctl: rendered for ${host.name}; do not edit (changes are overwritten)
global
  log /dev/log local0
  user haproxy
  group haproxy
  maxconn ${lb?.maxconn ?? 4096}
  stats socket /run/haproxy/admin.sock mode 660 level admin expose-fd listeners
  ssl-default-bind-options ssl-min-ver TLSv1.2

defaults
  mode http
  log global
  option httplog
  option dontlognull
  timeout connect ${t.connect ?? '5s'}
  timeout client ${t.client ?? '30s'}
  timeout server ${t.server ?? '30s'}
  timeout http-request 10s
  default-server init-addr last,libc,none
`);
  const services = new Set<string>();
  const gwHere = runsGateway(p, host);
  if (gwHere) for (const r of gw!.routes) services.add(r.service);
  if (lb && onLb(p, host)) {
    // Stats page and Prometheus metrics on the host's own address only (never the VIP or 0.0.0.0).
    out.push(`frontend stats
  bind ${host.address}:${lb.stats_port ?? 8404}
  stats enable
  stats uri /stats
  stats refresh 10s
  http-request use-service prometheus-exporter if { path /metrics }
`);
    const gwHosts = gatewayHosts(p);
    for (const l of lb.listeners) {
      const tls = l.tls ? ` ssl crt ${CERT_DIR}/${l.name}.pem alpn http/1.1` : '';
      out.push(`frontend lb_${l.name}
  bind :${l.port}${tls}
  option forwardfor
  http-request set-header X-Forwarded-Proto ${l.tls ? 'https' : 'http'}
  default_backend ${l.to === 'gateway' ? `lb_${l.name}_gateway` : `svc_${l.to}`}
`);
      if (l.to === 'gateway') {
        const port = gw?.port ?? DEFAULT_GW_PORT;
        out.push(`backend lb_${l.name}_gateway
  balance roundrobin
  option httpchk GET ${HEALTH_URI}
  default-server check inter 1s fall 2 rise 2
${gwHosts.map((g) => `  server ${g.name} ${g.address}:${port}`).join('\n')}
`);
      } else services.add(l.to);
    }
  }
  if (gwHere) out.push(renderHaproxyGateway(p, host));
  const defs = gw?.services ?? {};
  const used = [...services].filter((s) => defs[s]);
  for (const s of used) out.push(renderServiceBackend(s, defs[s]!));
  if (used.some((s) => defs[s]!.consul)) out.push(RESOLVERS);
  return out.join('\n');
}

export const UNIT_CONTENT = `[Unit]
Description=HAProxy (rtctl)
After=network-online.target
Wants=network-online.target

[Service]
# Master-worker (-Ws): a reload (USR2) starts new workers on the same listening sockets while the old ones
# finish their connections; the configuration is checked first, so a broken one never replaces the running one.
ExecStartPre=/usr/sbin/haproxy -c -q -f ${SECRETS_CFG} -f ${CFG}
ExecStart=/usr/sbin/haproxy -Ws -f ${SECRETS_CFG} -f ${CFG} -p /run/haproxy.pid -S /run/haproxy-master.sock
ExecReload=/usr/sbin/haproxy -c -q -f ${SECRETS_CFG} -f ${CFG}
ExecReload=/bin/kill -USR2 $MAINPID
KillMode=mixed
Restart=always
SuccessExitStatus=143
Type=notify
RuntimeDirectory=haproxy
RuntimeDirectoryPreserve=yes

[Install]
WantedBy=multi-user.target
`;

function file(path: string, content: string, check?: string, mode?: string): Resource {
  const sensitive = hasRefs(content);
  return {
    type: 'file', id: makeId('file', path), path, content, sensitive, owner: 'root', group: 'root',
    mode: mode ?? (sensitive ? '0600' : '0644'), ...(check ? { check } : {}), notify: [makeId('unit', UNIT)], origin: { path: 'loadbalancer' },
  };
}

export function haproxyResources(p: Platform, host: Host): Resource[] {
  if (!onLb(p, host) && !runsGateway(p, host)) return [];
  const origin = { path: onLb(p, host) ? 'loadbalancer' : 'gateway' };
  const out: Resource[] = [
    { type: 'package', id: makeId('package', 'haproxy'), name: 'haproxy', origin },
    { type: 'directory', id: makeId('directory', CERT_DIR), path: CERT_DIR, owner: 'root', group: 'root', mode: '0700', origin },
    { type: 'directory', id: makeId('directory', GW_DIR), path: GW_DIR, owner: 'root', group: 'root', mode: '0700', origin },
    // Written (and checked alone) before haproxy.cfg, whose check needs it.
    // Alone it has no listener: haproxy then exits 2 ("no error but will not start"), which is fine here.
    file(SECRETS_CFG, renderHaproxySecrets(p), 'haproxy -c -q -f {}; rc=$?; [ $rc -eq 0 ] || [ $rc -eq 2 ]'),
    file(APIKEYS_MAP, renderApiKeys(p), undefined, '0600'),
  ];
  const lb = p.doc.loadbalancer;
  if (lb && onLb(p, host)) {
    for (const l of lb.listeners) {
      if (!l.tls) continue;
      const src = l.tls.cert ?? `\${file:${certSecretPath(l.name)}}`;
      out.push(file(`${CERT_DIR}/${l.name}.pem`, src, undefined, '0600'));
    }
  }
  out.push(file(CFG, renderHaproxyCfg(p, host), `haproxy -c -q -f ${SECRETS_CFG} -f {}`));
  out.push({ type: 'unit', id: makeId('unit', UNIT), name: UNIT, content: UNIT_CONTENT, enabled: true, started: true, reload: true, sensitive: false, origin });
  // The package's postinst starts its own haproxy.service before rtctl's unit exists; `start` on the new unit is
  // then a no-op and the package's process would keep serving Debian's default config. Restart once if so.
  out.push({
    type: 'exec', id: makeId('exec', 'haproxy-runs-rtctl-unit'), name: 'haproxy-runs-rtctl-unit',
    probe: `pid=$(systemctl show -p MainPID --value ${UNIT}); if [ "\${pid:-0}" != 0 ] && tr '\\0' ' ' < /proc/$pid/cmdline | grep -q ${SECRETS_CFG}; then echo rtctl; else echo other; fi`,
    want: 'rtctl', run: `systemctl restart ${UNIT}`, description: 'restart haproxy under rtctl\'s unit', origin,
  });
  return out;
}

export function loadbalancerRules(p: Platform): Problem[] {
  const lb = p.doc.loadbalancer;
  if (!lb) return [];
  const out: Problem[] = [];
  const { address, prefix } = parseVip(lb.vip);
  const hosts = lbHosts(p);
  if (ipToInt(address) === undefined || prefix > 32) out.push({ path: ['loadbalancer', 'vip'], message: `"${lb.vip}" is not a valid IPv4 address with prefix length` });
  else {
    for (const h of hosts) {
      if (h.address === address) out.push({ path: ['loadbalancer', 'vip'], message: `the virtual IP ${address} is the address of host ${h.name}` });
      else if (!inSubnet(h.address, address, prefix)) out.push({ path: ['loadbalancer', 'vip'], message: `the virtual IP ${lb.vip} is outside the subnet of host ${h.name} (${h.address})` });
    }
  }
  if (hosts.length > 0 && hosts.length < 2) out.push({ path: ['loadbalancer', 'hosts'], message: 'a virtual IP needs at least 2 load-balancer hosts' });
  const services = Object.keys(p.doc.gateway?.services ?? {});
  const ports = new Map<number, number>();
  lb.listeners.forEach((l, i) => {
    if (l.to === 'gateway' ? !p.doc.gateway : !services.includes(l.to)) {
      out.push({ path: ['loadbalancer', 'listeners', i, 'to'], message: l.to === 'gateway' ? 'listener sends to the gateway, but there is no `gateway` section' : `unknown service "${l.to}" (use \`gateway\` or a service in gateway.services)` });
    }
    const prev = ports.get(l.port);
    if (prev !== undefined) out.push({ path: ['loadbalancer', 'listeners', i, 'port'], message: `port ${l.port} is also used by listener loadbalancer/listeners/${prev}` });
    ports.set(l.port, i);
    if (l.tls && !l.tls.internal === !l.tls.cert) out.push({ path: ['loadbalancer', 'listeners', i, 'tls'], message: 'tls needs exactly one of `internal: true` or `cert`', key: true });
    if (l.tls?.cert && !hasRefs(l.tls.cert)) out.push({ path: ['loadbalancer', 'listeners', i, 'tls', 'cert'], message: 'cert must be a secret reference such as ${file:certs/api.pem} (it holds the private key)' });
  });
  return out;
}

export const CERT_SECRETS = '.rtctl/secrets/haproxy';

/**
 * Listener certificates from the internal CA (recipes/haproxy-certs.ts), one per TLS listener with
 * `internal: true`, renewed `renew_before_days` before expiry (or when the names change) so `plan` shows it.
 */
export function haproxySecrets(p: Platform): GeneratedSecret[] {
  const lb = p.doc.loadbalancer;
  const internal = (lb?.listeners ?? []).filter((l) => l.tls?.internal);
  if (!lb || internal.length === 0) return [];
  const vip = parseVip(lb.vip).address;
  return [
    ...caSecrets(),
    ...internal.map((l) => {
      const dns = l.tls!.names ?? [];
      const before = l.tls!.renew_before_days ?? 30;
      return leafSecret({ path: certSecretPath(l.name), commonName: dns[0] ?? vip, dnsNames: dns, ips: [vip], validityDays: l.tls!.validity_days ?? 90, renewBeforeDays: before });
    }),
  ];
}

export const haproxy: Recipe = {
  name: 'haproxy',
  resources: haproxyResources,
  rules: loadbalancerRules,
  secrets: haproxySecrets,
};
