/**
 * The `gateway` section of platform.yaml: an API gateway (routes, consumers and their credentials, plugins)
 * rendered for HAProxy (engine `haproxy`, runs in the lab) or Kong 3.x DB-less (engine `kong`). Plugin and
 * credential names follow Kong's, so one description serves both engines. Rendered by recipes/gateway.ts.
 */
import { Type, type Static } from '@sinclair/typebox';

const Duration = Type.String({ pattern: '^[0-9]+(ms|s|m|h)$', description: 'A duration, e.g. `2s`.', errorMessage: 'must be a duration such as 500ms, 2s or 1m' });
const Ident = (what: string) => Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$', description: what, errorMessage: 'must be a lower-case name (letters, digits, `_`, `-`)' });
const Limit = (period: string) => Type.Optional(Type.Integer({ minimum: 1, maximum: 1000000000, description: `Requests allowed per ${period}.` }));

export const PluginsSchema = Type.Object(
  {
    'key-auth': Type.Optional(Type.Object({
      key_names: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', errorMessage: 'must be a header name', description: 'A header name.' }), { minItems: 1, description: 'Request headers that may carry the API key (default `[apikey]`).' })),
    }, { additionalProperties: false, description: 'Require an API key of a consumer (`keyauth_credentials`); missing or wrong → 401.' })),
    jwt: Type.Optional(Type.Object({
      claims_to_verify: Type.Optional(Type.Array(Type.Literal('exp'), { description: 'Registered claims checked besides the signature; `exp` is always checked by the haproxy engine.' })),
    }, { additionalProperties: false, description: 'Require a JWT (`Authorization: Bearer …`) signed with a consumer\'s `jwt_secrets` (HS256), matched by its `iss` claim; invalid or expired → 401.' })),
    'rate-limiting': Type.Optional(Type.Object({
      second: Limit('second'),
      minute: Limit('minute'),
      hour: Limit('hour'),
      limit_by: Type.Optional(Type.Union([Type.Literal('consumer'), Type.Literal('ip')], { description: 'Count per authenticated consumer (falling back to the client IP) or per client IP (default `consumer`).' })),
    }, { additionalProperties: false, description: 'Limit requests per period; over the limit → 429. Counters are per gateway host.' })),
    'request-size-limiting': Type.Optional(Type.Object({
      allowed_payload_size: Type.Integer({ minimum: 1, maximum: 1048576, description: 'Largest request body allowed, in `size_unit`s; larger → 413.' }),
      size_unit: Type.Optional(Type.Union([Type.Literal('bytes'), Type.Literal('kilobytes'), Type.Literal('megabytes')], { description: 'Unit of `allowed_payload_size` (default `megabytes`).' })),
    }, { additionalProperties: false, description: 'Reject request bodies over a size.' })),
    cors: Type.Optional(Type.Object({
      origins: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Allowed origins (`*` for any).' }),
      methods: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Z]+$', errorMessage: 'must be an upper-case HTTP method' }), { description: 'Allowed methods (default GET, HEAD, PUT, PATCH, POST, DELETE, OPTIONS).' })),
      headers: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Allowed request headers.' })),
      credentials: Type.Optional(Type.Boolean({ description: 'Send `Access-Control-Allow-Credentials: true`.' })),
      max_age: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400, description: 'Seconds a preflight result may be cached.' })),
    }, { additionalProperties: false, description: 'CORS: answer preflight requests and add the CORS response headers.' })),
  },
  { additionalProperties: false, description: 'Plugins (Kong\'s names and options). On a route they replace a global plugin of the same name.' },
);

export const ServiceSchema = Type.Object(
  {
    servers: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9.-]+:[0-9]{1,5}$', description: 'host:port', errorMessage: 'must be host:port' }), { minItems: 1, description: 'Static instances, as `host:port`.' })),
    consul: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$', description: 'A Consul service name: instances come from Consul DNS SRV (`_NAME._tcp.service.consul` on the local agent, 127.0.0.1:8600), so new instances need no reload.', errorMessage: 'must be a Consul service name' })),
    max_instances: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Slots for Consul-discovered instances (default 10).' })),
    health: Type.Optional(Type.Object({
      path: Type.Optional(Type.String({ pattern: '^/', description: 'HTTP path checked with GET (default `/`); 2xx/3xx is healthy.' })),
      interval: Type.Optional(Duration),
      fall: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Failed checks before an instance is taken out (default 3).' })),
      rise: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Passed checks before it is put back (default 2).' })),
    }, { additionalProperties: false, description: 'Active health checks (interval default 2s).' })),
    timeout: Type.Optional(Duration),
  },
  { additionalProperties: false, description: 'An upstream service: exactly one of `servers` or `consul`.' },
);

export const RouteSchema = Type.Object(
  {
    name: Ident('Route name, unique.'),
    hosts: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z0-9.-]+$', errorMessage: 'must be a host name' }), { minItems: 1, description: 'Host header values (without port) this route matches. Omitted: any host.' })),
    paths: Type.Optional(Type.Array(Type.String({ pattern: '^/[^\\s]*$', errorMessage: 'must start with /' }), { minItems: 1, description: 'Path prefixes this route matches. Omitted: any path. The longest matching prefix wins.' })),
    methods: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Z]+$', errorMessage: 'must be an upper-case HTTP method' }), { minItems: 1, description: 'Methods this route matches. Omitted: any method.' })),
    service: Type.String({ minLength: 1, description: 'The service (in `gateway.services`) requests go to.' }),
    plugins: Type.Optional(PluginsSchema),
  },
  { additionalProperties: false, description: 'A route: host, path and method → service. At least one of hosts and paths.' },
);

export const ConsumerSchema = Type.Object(
  {
    username: Ident('Consumer name (shown to the service as header `X-Consumer-Username`).'),
    keyauth_credentials: Type.Optional(Type.Array(Type.Object({
      key: Type.String({ minLength: 1, description: 'The API key: a secret reference such as `${file:.rtctl/secrets/alice.key}` (no spaces).' }),
    }, { additionalProperties: false }), { description: 'API keys for `key-auth`.' })),
    jwt_secrets: Type.Optional(Type.Array(Type.Object({
      key: Type.String({ minLength: 1, description: 'The issuer: a token\'s `iss` claim selects this secret.' }),
      algorithm: Type.Optional(Type.Literal('HS256', { description: 'Signature algorithm (HS256).' })),
      secret: Type.String({ minLength: 1, description: 'HMAC secret, as a secret reference (letters, digits, `-`, `_`, `.`, `+`, `/`, `=` only).' }),
    }, { additionalProperties: false }), { description: 'JWT issuers and their secrets for `jwt`.' })),
  },
  { additionalProperties: false, description: 'A consumer of the API and its credentials (secrets as references).' },
);

export const GatewaySection = Type.Object(
  {
    engine: Type.Union([Type.Literal('haproxy'), Type.Literal('kong')], { description: '`haproxy` (HAProxy frontends, runs in the lab) or `kong` (Kong 3.x DB-less: kong.conf, declarative config, systemd unit, applied via the Admin API on 127.0.0.1).' }),
    hosts: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Hosts the gateway runs on (default: the load-balancer hosts).' })),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Port the gateway listens on, on each gateway host\'s own address (default 8000).' })),
    services: Type.Record(Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }), ServiceSchema, { description: 'Upstream services by name.' }),
    routes: Type.Array(RouteSchema, { description: 'Routes, matched by host, path prefix and method.' }),
    consumers: Type.Optional(Type.Array(ConsumerSchema, { description: 'Consumers and their credentials.' })),
    plugins: Type.Optional(PluginsSchema),
  },
  { additionalProperties: false, description: 'The API gateway: routes, consumers and plugins.' },
);

export type GatewayDoc = Static<typeof GatewaySection>;
export type RouteDoc = Static<typeof RouteSchema>;
export type ServiceDoc = Static<typeof ServiceSchema>;
export type PluginsDoc = Static<typeof PluginsSchema>;
export type ConsumerDoc = Static<typeof ConsumerSchema>;
