/**
 * The `services` section of platform.yaml: the user's own services, each instance a hardened systemd unit,
 * rolled out in health-gated batches. Registered in src/model/schema.ts; rendered by recipes/services.ts.
 */
import { Type, type Static } from '@sinclair/typebox';

const Duration = Type.String({ pattern: '^[0-9]+(ms|s|m)$', description: 'A duration: a number and a unit (`ms`, `s`, `m`), e.g. `5s`.', errorMessage: 'must be a duration such as 500ms, 5s or 1m' });
const Selector = Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'Host names or labels. `all` means every host.' });
const Port = Type.Integer({ minimum: 1, maximum: 65535, description: 'A TCP port.' });
/** A count (`1`) or a percentage of the service's instances (`"25%"`). Range checked by a rule, at its line. */
const CountOrPercent = Type.Union([Type.Integer({ description: 'A number of instances.' }), Type.String({ pattern: '^[0-9]+%$', description: 'A percentage of the instances, e.g. `"25%"`.' })], {
  description: 'A number of instances or a percentage of them (`"25%"`, rounded up).',
  errorMessage: 'must be a number of instances or a percentage such as "25%"',
});

export const ServiceHealthSchema = Type.Object(
  {
    http: Type.Optional(Type.String({ minLength: 1, description: 'HTTP path checked on the instance (`GET http://127.0.0.1:<port><path>`, 2xx = healthy), e.g. `/health`.' })),
    tcp: Type.Optional(Type.Boolean({ description: 'Instead of `http`: healthy when the port accepts a TCP connection.' })),
    interval: Type.Optional(Duration),
    timeout: Type.Optional(Duration),
    healthy_threshold: Type.Optional(Type.Integer({ minimum: 1, maximum: 20, description: 'Consecutive passing checks before an instance counts as healthy (default 2).' })),
    deadline: Type.Optional(Duration),
  },
  { additionalProperties: false, description: 'How an instance is checked: `http` path or `tcp`; `interval` (default 1s), `timeout` per check (default 2s), `deadline` for a (re)started instance to become healthy (default 30s).' },
);

export const ServiceRolloutSchema = Type.Object(
  {
    batch_size: Type.Optional(CountOrPercent),
    max_unavailable: Type.Optional(CountOrPercent),
    wait: Type.Optional(Duration),
    on_failure: Type.Optional(Type.Union([Type.Literal('rollback'), Type.Literal('stop')], { description: '`rollback` (default): the failed instance goes back to its previous release and rtctl stops; `stop`: leave the failed instance as it is (stopped) and stop.' })),
    drain_timeout: Type.Optional(Duration),
  },
  { additionalProperties: false, description: 'How a change rolls out: `batch_size` (or its synonym `max_unavailable`) instances at a time (default 1), `wait` between batches (default 0s), `on_failure`, and `drain_timeout` for in-flight requests to finish (default 30s).' },
);

export const ServiceSchema = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z][a-z0-9-]{0,30}$', description: 'Service name: the unit is `<name>@<port>.service`, the system user `<name>` unless `user` says otherwise.', errorMessage: 'must be a lower-case name (letters, digits, `-`), starting with a letter' }),
    artifact: Type.String({ minLength: 1, description: 'Name of an entry in `artifacts`; its `version` is the version this service runs.' }),
    command: Type.String({ minLength: 1, description: 'ExecStart of each instance; `{release}` is the instance\'s current release directory, e.g. `/usr/bin/python3 {release}/hello.py`. The instance\'s port is in `$PORT`.' }),
    dir: Type.Optional(Type.String({ pattern: '^/[^\\t\\n ]*$', description: 'Where releases are installed (default `/opt/<name>`).', errorMessage: 'must be an absolute path without spaces' })),
    user: Type.Optional(Type.String({ pattern: '^[a-z_][a-z0-9_-]{0,30}$', description: 'System user the instances run as (default: the service name). Created by rtctl.', errorMessage: 'must be a user name' })),
    keep: Type.Optional(Type.Integer({ minimum: 2, maximum: 20, description: 'Releases kept on each host for rollback (default 3).' })),
    packages: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9][a-z0-9+.-]+$' }), { description: 'Debian packages the service needs on its hosts (e.g. `python3`).' })),
    environment: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String(), { description: 'Environment variables, written to `/etc/<name>/env` (0600 when a value holds a secret reference such as `${file:db.pass}`).' })),
    instances: Type.Array(
      Type.Object(
        { hosts: Selector, ports: Type.Array(Port, { minItems: 1, description: 'One instance per port on each of these hosts.' }) },
        { additionalProperties: false, description: 'Instances: one per port on each selected host.' },
      ),
      { minItems: 1, description: 'Where the instances run.' },
    ),
    resources: Type.Optional(
      Type.Object(
        {
          memory: Type.Optional(Type.String({ pattern: '^[0-9]+[KMG]?$', description: 'MemoryMax per instance, e.g. `256M`.', errorMessage: 'must be a size such as 256M or 1G' })),
          cpu: Type.Optional(Type.String({ pattern: '^[0-9]+%$', description: 'CPUQuota per instance, e.g. `50%` (half a core).', errorMessage: 'must be a percentage such as 50%' })),
        },
        { additionalProperties: false, description: 'Limits per instance (defaults: memory 256M, cpu 100%).' },
      ),
    ),
    health: ServiceHealthSchema,
    rollout: Type.Optional(ServiceRolloutSchema),
    depends_on: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Services (by name) or `database` that roll out before this one.' })),
    tags: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'Consul tags of the instances.' })),
    haproxy: Type.Optional(
      Type.Object(
        {
          hosts: Selector,
          runtime_port: Port,
          backend: Type.String({ pattern: '^[A-Za-z0-9_.-]+$', description: 'HAProxy backend holding the instances (servers are found by address and port).' }),
        },
        { additionalProperties: false, description: 'Drain instances on these HAProxy load balancers through the Runtime API (`stats socket ipv4@<host address>:<runtime_port> level admin`) before stopping them.' },
      ),
    ),
  },
  { additionalProperties: false, description: 'A service of your own: instances as hardened systemd units, rolled out in health-gated batches.' },
);

export const ServicesSection = Type.Array(ServiceSchema, { description: 'Your services (see docs/services.md).' });

export type ServiceDoc = Static<typeof ServiceSchema>;
