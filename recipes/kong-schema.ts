/**
 * Kong 3.x declarative configuration (`_format_version: "3.0"`, DB-less) as far as rtctl renders it, written down
 * from Kong's documented entity rules (Admin API / declarative-config reference and the entity schemas in
 * Kong/kong kong/db/schema/entities/*.lua and kong/plugins/<name>/schema.lua, 3.x): facts only. Kong itself can't
 * run here, so this schema (plus the cross-entity rules in `kongEntityProblems`) is what the rendered file is
 * checked against. It is closed (`additionalProperties: false`) where Kong is: an unknown field is an error.
 */
import { Type, type TSchema } from '@sinclair/typebox';

const Str = Type.String({ minLength: 1 });
const Name = Type.String({ pattern: '^[A-Za-z0-9._~-]+$' });
const Hostname = Type.String({ pattern: '^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$' });
const Timeout = Type.Integer({ minimum: 1, maximum: 2147483646 });
const Method = Type.String({ pattern: '^[A-Z]+$' });
const Obj = (p: Record<string, TSchema>, required: string[] = []) => Type.Object(
  Object.fromEntries(Object.entries(p).map(([k, v]) => [k, required.includes(k) ? v : Type.Optional(v)])), { additionalProperties: false },
);

const KeyAuth = Obj({
  key_names: Type.Array(Type.String({ pattern: '^[A-Za-z0-9_-]+$' }), { minItems: 1 }),
  hide_credentials: Type.Boolean(), anonymous: Str, key_in_header: Type.Boolean(), key_in_query: Type.Boolean(), key_in_body: Type.Boolean(),
  run_on_preflight: Type.Boolean(), realm: Str,
});
const Jwt = Obj({
  claims_to_verify: Type.Array(Type.Union([Type.Literal('exp'), Type.Literal('nbf')])),
  key_claim_name: Str, secret_is_base64: Type.Boolean(), maximum_expiration: Type.Number({ minimum: 0, maximum: 31536000 }),
  header_names: Type.Array(Str), uri_param_names: Type.Array(Str), cookie_names: Type.Array(Str), run_on_preflight: Type.Boolean(), anonymous: Str,
});
const Positive = Type.Number({ exclusiveMinimum: 0 });
const RateLimiting = Obj({
  second: Positive, minute: Positive, hour: Positive, day: Positive, month: Positive, year: Positive,
  limit_by: Type.Union(['consumer', 'credential', 'ip', 'service', 'header', 'path', 'consumer-group'].map((x) => Type.Literal(x))),
  header_name: Str, path: Str,
  // DB-less: the `cluster` policy needs a database and is rejected.
  policy: Type.Union([Type.Literal('local'), Type.Literal('redis')]),
  fault_tolerant: Type.Boolean(), hide_client_headers: Type.Boolean(), error_code: Type.Number(), error_message: Str, sync_rate: Type.Number(),
});
const RequestSize = Obj({
  allowed_payload_size: Type.Integer({ minimum: 1 }),
  size_unit: Type.Union([Type.Literal('megabytes'), Type.Literal('kilobytes'), Type.Literal('bytes')]),
  require_content_length: Type.Boolean(),
});
const Cors = Obj({
  origins: Type.Array(Str), headers: Type.Array(Str), exposed_headers: Type.Array(Str),
  methods: Type.Array(Type.Union(['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT'].map((x) => Type.Literal(x)))),
  max_age: Type.Number({ minimum: 0 }), credentials: Type.Boolean(), preflight_continue: Type.Boolean(), private_network: Type.Boolean(),
});

/** Plugin config schemas by name (only plugins rtctl renders). */
export const KONG_PLUGIN_CONFIG: Record<string, TSchema> = {
  'key-auth': KeyAuth, jwt: Jwt, 'rate-limiting': RateLimiting, 'request-size-limiting': RequestSize, cors: Cors,
};

const Ref = Type.Union([Name, Obj({ name: Name }, ['name'])]);
export const KongPlugin = Obj({ name: Type.Union(Object.keys(KONG_PLUGIN_CONFIG).map((x) => Type.Literal(x))), instance_name: Name, config: Type.Object({}), enabled: Type.Boolean(), route: Ref, service: Ref, consumer: Ref, protocols: Type.Array(Str), tags: Type.Array(Str) }, ['name']);

export const KongDeclarative = Obj(
  {
    _format_version: Type.Union([Type.Literal('1.1'), Type.Literal('2.1'), Type.Literal('3.0')]),
    _transform: Type.Boolean(),
    _comment: Str,
    services: Type.Array(Obj({
      name: Name, host: Hostname, port: Type.Integer({ minimum: 0, maximum: 65535 }),
      protocol: Type.Union(['http', 'https', 'grpc', 'grpcs', 'tcp', 'tls', 'udp', 'tls_passthrough', 'ws', 'wss'].map((x) => Type.Literal(x))),
      path: Type.String({ pattern: '^/' }), retries: Type.Integer({ minimum: 0, maximum: 32767 }),
      connect_timeout: Timeout, read_timeout: Timeout, write_timeout: Timeout, enabled: Type.Boolean(), tags: Type.Array(Str),
    }, ['name', 'host'])),
    routes: Type.Array(Obj({
      name: Name, service: Ref,
      protocols: Type.Array(Type.Union(['http', 'https', 'grpc', 'grpcs', 'tcp', 'tls', 'udp', 'tls_passthrough', 'ws', 'wss'].map((x) => Type.Literal(x)))),
      methods: Type.Array(Method), hosts: Type.Array(Type.String({ pattern: '^(\\*\\.)?[A-Za-z0-9.-]+(\\.\\*)?(:[0-9]+)?$' })),
      paths: Type.Array(Type.String({ pattern: '^(/|~)' })), headers: Type.Record(Type.String(), Type.Array(Str)), snis: Type.Array(Str),
      strip_path: Type.Boolean(), preserve_host: Type.Boolean(), regex_priority: Type.Integer(),
      path_handling: Type.Union([Type.Literal('v0'), Type.Literal('v1')]),
      https_redirect_status_code: Type.Union([426, 301, 302, 307, 308].map((x) => Type.Literal(x))),
      request_buffering: Type.Boolean(), response_buffering: Type.Boolean(), tags: Type.Array(Str),
    }, ['name'])),
    upstreams: Type.Array(Obj({
      name: Hostname, algorithm: Type.Union(['round-robin', 'consistent-hashing', 'least-connections', 'latency'].map((x) => Type.Literal(x))),
      slots: Type.Integer({ minimum: 10, maximum: 65536 }),
      targets: Type.Array(Obj({ target: Type.String({ pattern: '^[A-Za-z0-9.-]+(:[0-9]{1,5})?$' }), weight: Type.Integer({ minimum: 0, maximum: 65535 }) }, ['target'])),
      healthchecks: Type.Object({}), tags: Type.Array(Str),
    }, ['name'])),
    consumers: Type.Array(Obj({
      username: Str, custom_id: Str,
      keyauth_credentials: Type.Array(Obj({ key: Str, tags: Type.Array(Str) }, ['key'])),
      jwt_secrets: Type.Array(Obj({
        key: Str, secret: Str, algorithm: Type.Union(['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512'].map((x) => Type.Literal(x))), rsa_public_key: Str,
      }, ['key'])),
      tags: Type.Array(Str),
    })),
    plugins: Type.Array(KongPlugin),
  },
  ['_format_version'],
);
