/**
 * The `database` section of platform.yaml: a PostgreSQL primary with streaming replicas (recipes/postgres.ts).
 * Registered in src/model/schema.ts. `primary` is where the cluster is first created; after a failover the
 * current primary is read from the hosts, never from here (see docs/postgres.md).
 */
import { Type, type Static } from '@sinclair/typebox';

const Ident = Type.String({
  pattern: '^[a-z_][a-z0-9_]{0,62}$',
  description: 'A PostgreSQL identifier: lower-case letters, digits and `_`, starting with a letter or `_`.',
  errorMessage: 'must be a lower-case PostgreSQL name (letters, digits, `_`)',
});

const HostName = Type.String({ minLength: 1, description: 'A host name from `hosts`.' });

export const DatabaseRole = Type.Object(
  {
    name: Ident,
    password: Type.String({
      minLength: 1,
      description: 'The role\'s password as a secret reference (`${file:PATH}` or `${env:NAME}`); never written in clear to any file.',
    }),
    createdb: Type.Optional(Type.Boolean({ description: 'May create databases (default false).' })),
  },
  { additionalProperties: false, description: 'A login role for a service (scram-sha-256).' },
);

export const DatabaseDb = Type.Object(
  {
    name: Ident,
    owner: Type.String({ minLength: 1, description: 'Owner: one of `roles`.' }),
  },
  { additionalProperties: false, description: 'A database, created on the primary (replicas get it by replication).' },
);

export const DatabaseAccess = Type.Object(
  {
    database: Type.String({ minLength: 1, description: 'Database name, or `all`.' }),
    user: Type.String({ minLength: 1, description: 'Role name, or `all`.' }),
    from: Type.String({
      pattern: '^[0-9a-fA-F:.]+/[0-9]{1,3}$',
      description: 'Client addresses in CIDR form, e.g. `198.18.1.0/24`.',
      errorMessage: 'must be an address range in CIDR form, e.g. 198.18.1.0/24',
    }),
  },
  { additionalProperties: false, description: 'A pg_hba line: TLS (`hostssl`) and scram-sha-256 only.' },
);

export const DatabaseReplication = Type.Object(
  {
    mode: Type.Union([Type.Literal('async'), Type.Literal('sync')], {
      description: '`sync`: a commit returns once `standbys` replicas have it (no committed write lost on failover). `async`: commits don\'t wait.',
    }),
    standbys: Type.Optional(Type.Integer({ minimum: 1, maximum: 16, description: 'With `sync`: how many replicas must confirm each commit (`ANY n (…)`; default 1).' })),
  },
  { additionalProperties: false, description: 'Synchronous or asynchronous streaming replication.' },
);

export const DatabaseSection = Type.Object(
  {
    version: Type.Optional(Type.Literal(15, { description: 'PostgreSQL major version (Debian 12 ships 15; default 15).' })),
    primary: HostName,
    replicas: Type.Optional(Type.Array(HostName, { description: 'Hosts bootstrapped as streaming replicas of the primary.' })),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'TCP port (default 5432).' })),
    replication: Type.Optional(DatabaseReplication),
    settings: Type.Optional(
      Type.Record(Type.String({ pattern: '^[a-z_][a-z0-9_.]*$' }), Type.Union([Type.String(), Type.Number(), Type.Boolean()]), {
        description: 'postgresql.conf settings (name → value), written to conf.d/50-rtctl.conf. A change that needs a restart (pg_settings.context `postmaster`) is planned as a restart, others as a reload.',
      }),
    ),
    roles: Type.Optional(Type.Array(DatabaseRole, { description: 'Login roles for the services.' })),
    databases: Type.Optional(Type.Array(DatabaseDb, { description: 'Databases for the services.' })),
    access: Type.Optional(Type.Array(DatabaseAccess, { description: 'Who may connect from where (pg_hba `hostssl … scram-sha-256` lines).' })),
  },
  { additionalProperties: false, description: 'A PostgreSQL primary with streaming replicas (Debian packages), TLS from an internal CA, scram-sha-256.' },
);

export type DatabaseDoc = Static<typeof DatabaseSection>;
