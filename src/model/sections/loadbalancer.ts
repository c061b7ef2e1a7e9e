/**
 * The `loadbalancer` section of platform.yaml: HAProxy on two (or more) hosts sharing a virtual IP through
 * keepalived (VRRP). Registered in src/model/schema.ts; rendered by recipes/haproxy.ts and recipes/keepalived.ts.
 */
import { Type, type Static } from '@sinclair/typebox';

const Duration = Type.String({ pattern: '^[0-9]+(ms|s|m|h)$', description: 'A duration: a number and a unit (`ms`, `s`, `m`, `h`), e.g. `5s`.', errorMessage: 'must be a duration such as 500ms, 5s or 1m' });
const DnsName = Type.String({ pattern: '^[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})$', description: 'A DNS name.', errorMessage: 'must be a DNS name' });

export const ListenerSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,30}$', description: 'Listener name (used in HAProxy section names and certificate file names).', errorMessage: 'must be a lower-case name (letters, digits, `_`, `-`)' }),
    port: Type.Integer({ minimum: 1, maximum: 65535, description: 'TCP port the listener binds on every address of the load-balancer hosts (so also on the virtual IP).' }),
    to: Type.String({ minLength: 1, description: '`gateway` (the API gateway on the gateway hosts) or the name of a service in `gateway.services` to send traffic to directly.' }),
    tls: Type.Optional(
      Type.Object(
        {
          internal: Type.Optional(Type.Boolean({ description: 'A certificate issued by rtctl\'s internal CA (generated on the operator side under `.rtctl/secrets/pki/`), renewed before it expires.' })),
          names: Type.Optional(Type.Array(DnsName, { description: 'DNS names for the internal certificate (the virtual IP is always included).' })),
          validity_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 825, description: 'Lifetime of an internal certificate in days (default 90).' })),
          renew_before_days: Type.Optional(Type.Integer({ minimum: 1, maximum: 365, description: 'Renew an internal certificate this many days before it expires (default 30); `plan` then shows the change.' })),
          cert: Type.Optional(Type.String({ minLength: 1, description: 'Instead of `internal`: a PEM file holding certificate chain and private key, as a secret reference (e.g. `${file:certs/api.pem}`).' })),
        },
        { additionalProperties: false, description: 'Terminate TLS on this listener.' },
      ),
    ),
  },
  { additionalProperties: false, description: 'A port the load balancer listens on, and where it sends the traffic.' },
);

export const LoadbalancerSection = Type.Object(
  {
    hosts: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Host names or labels of the load-balancer hosts (HAProxy and keepalived run there).' }),
    vip: Type.String({
      pattern: '^([0-9]{1,3}\\.){3}[0-9]{1,3}/[0-9]{1,2}$',
      description: 'The virtual IP with its prefix length, e.g. `198.18.1.100/24`. The prefix gives the subnet: the address must lie in the subnet of every load-balancer host and must not be a host\'s own address.',
      errorMessage: 'must be an IPv4 address with its prefix length, e.g. 198.18.1.100/24',
    }),
    interface: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_.-]{1,15}$', description: 'Network interface carrying the virtual IP (default `eth0`).', errorMessage: 'must be an interface name' })),
    virtual_router_id: Type.Optional(Type.Integer({ minimum: 1, maximum: 255, description: 'VRRP virtual router id, unique on the network segment (default 51).' })),
    stats_port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Port of the stats page (`/stats`) and Prometheus metrics (`/metrics`), bound to each load-balancer host\'s own address only, never the virtual IP (default 8404).' })),
    maxconn: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000000, description: 'Maximum concurrent connections per HAProxy process (default 4096).' })),
    timeouts: Type.Optional(
      Type.Object(
        {
          connect: Type.Optional(Duration),
          client: Type.Optional(Duration),
          server: Type.Optional(Duration),
        },
        { additionalProperties: false, description: 'HAProxy timeouts (defaults: connect 5s, client 30s, server 30s).' },
      ),
    ),
    listeners: Type.Array(ListenerSchema, { minItems: 1, description: 'Listeners (HTTP or HTTPS).' }),
  },
  { additionalProperties: false, description: 'HAProxy load balancers sharing a virtual IP with keepalived (VRRP).' },
);

export type LoadbalancerDoc = Static<typeof LoadbalancerSection>;
export type ListenerDoc = Static<typeof ListenerSchema>;
