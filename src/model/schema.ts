/**
 * The single source of truth for platform.yaml: TypeBox schemas (which ARE JSON Schema) with descriptions and
 * defaults. The TypeScript types below are derived from them, and schemas/platform.schema.json is generated
 * from them (scripts/generate-schema.ts, kept in sync by a unit test).
 *
 * Component sections (consul, loadbalancer, gateway, database, services) are added by their recipes' issues;
 * each one is a property here plus one recipe module under recipes/.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { ConfigSection, ConsulSection } from './sections/consul.js';
import { DatabaseSection } from './sections/database.js';
import { GatewaySection } from './sections/gateway.js';
import { LoadbalancerSection } from './sections/loadbalancer.js';
import { ServicesSection } from './sections/services.js';

const Name = Type.String({
  pattern: '^[a-z0-9][a-z0-9_.-]{0,62}$',
  description: 'Lower-case name: letters, digits, `.`, `_`, `-`; starts with a letter or digit.',
  errorMessage: 'must be a lower-case name (letters, digits, `.`, `_`, `-`)',
});
const AbsPath = Type.String({ pattern: '^/[^\\t\\n]*$', description: 'An absolute path on the host.', errorMessage: 'must be an absolute path (starting with /)' });
const Mode = Type.String({ pattern: '^0?[0-7]{3,4}$', description: 'Octal file mode as a string, e.g. "0644".', errorMessage: 'must be an octal mode in quotes, e.g. "0644"' });
/** Which hosts a resource goes on: host names or labels; omitted = every host. */
const Selector = Type.Array(Type.String({ minLength: 1 }), {
  description: 'Host names or labels this goes on. Omitted: every host. `all` means every host.',
  minItems: 1,
});

function obj<T extends Record<string, TSchema>>(props: T, description: string) {
  return Type.Object(props, { additionalProperties: false, description });
}

export const JumpHostSchema = obj(
  {
    address: Type.String({ minLength: 1, description: 'Address of the jump host (bastion).' }),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, default: 22, description: 'SSH port.' })),
    user: Type.Optional(Type.String({ minLength: 1, description: 'Login user on the jump host (default: the host user).' })),
    key: Type.Optional(Type.String({ description: 'Private key file for the jump host (default: the host key).' })),
  },
  'An SSH jump host the connection goes through (like OpenSSH ProxyJump).',
);

/** Connection settings a host can set and `defaults` can give to every host. */
const ConnectionProps = {
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'SSH port (default 22).' })),
  user: Type.Optional(Type.String({ minLength: 1, description: 'SSH login user (default root).' })),
  become: Type.Optional(Type.Boolean({ description: 'Run privileged commands through `sudo -n` (no tty, no password).' })),
  key: Type.Optional(Type.String({ description: 'Private key file. Omitted: the ssh-agent at $SSH_AUTH_SOCK.' })),
  known_hosts: Type.Optional(Type.String({ description: 'OpenSSH known_hosts file for strict host-key checking (default ~/.ssh/known_hosts).' })),
  jump: Type.Optional(JumpHostSchema),
  connect_timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 600, description: 'Seconds to wait for a connection (default 10).' })),
  command_timeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400, description: 'Seconds one remote command may take (default 600).' })),
};

export const DefaultsSchema = obj(ConnectionProps, 'Connection settings every host inherits unless it sets its own.');

export const HostSchema = obj(
  {
    name: Name,
    address: Type.String({ minLength: 1, description: 'IP address or DNS name rtctl connects to.' }),
    labels: Type.Optional(Type.Array(Name, { description: 'Labels; resources select hosts by name or label.' })),
    ...ConnectionProps,
  },
  'A Linux host rtctl manages.',
);

export const ArtifactSchema = obj(
  {
    url: Type.Optional(Type.String({ pattern: '^(https?|file)://', description: 'Where to fetch it (once, into the local cache).' })),
    path: Type.Optional(Type.String({ minLength: 1, description: 'A local file instead of a URL (relative to platform.yaml).' })),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'SHA-256 of the file; checked locally and on every host.', errorMessage: 'must be 64 lower-case hex digits' }),
    version: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$', description: 'Release name: installs go to releases/<version>.' }),
    format: Type.Optional(
      Type.Union([Type.Literal('binary'), Type.Literal('tar.gz')], {
        description: '`binary`: a single executable file; `tar.gz`: an archive unpacked into the release directory.',
      }),
    ),
    filename: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9._-]+$', description: 'File name of a binary inside the release (default: the artifact name).' })),
  },
  'A binary or archive, verified by checksum and uploaded over SFTP to the hosts that need it.',
);

export const PackageSchema = obj(
  {
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9+.-]+$', description: 'Debian package name.' }),
    version: Type.Optional(Type.String({ description: 'Exact version to install (default: whatever apt picks).' })),
    hosts: Type.Optional(Selector),
  },
  'An apt package.',
);

export const GroupSchema = obj(
  {
    name: Name,
    system: Type.Optional(Type.Boolean({ description: 'A system group (default true).' })),
    hosts: Type.Optional(Selector),
  },
  'A Unix group.',
);

export const UserSchema = obj(
  {
    name: Name,
    system: Type.Optional(Type.Boolean({ description: 'A system user with no login shell (default true).' })),
    home: Type.Optional(AbsPath),
    shell: Type.Optional(AbsPath),
    groups: Type.Optional(Type.Array(Name, { description: 'Supplementary groups.' })),
    hosts: Type.Optional(Selector),
  },
  'A Unix user.',
);

export const DirectorySchema = obj(
  {
    path: AbsPath,
    owner: Type.Optional(Type.String({ description: 'Owner (default root).' })),
    group: Type.Optional(Type.String({ description: 'Group (default root).' })),
    mode: Type.Optional(Mode),
    hosts: Type.Optional(Selector),
  },
  'A directory.',
);

export const FileSchema = obj(
  {
    path: AbsPath,
    content: Type.Optional(Type.String({ description: 'Literal content. `${env:NAME}` / `${file:PATH}` references are secrets.' })),
    template: Type.Optional(Type.String({ description: 'A Mustache template file (relative to platform.yaml), rendered per host with `vars` and `host`.' })),
    vars: Type.Optional(Type.Record(Type.String(), Type.Unknown(), { description: 'Values for the template.' })),
    owner: Type.Optional(Type.String()),
    group: Type.Optional(Type.String()),
    mode: Type.Optional(Mode),
    check: Type.Optional(Type.String({ description: 'Command that checks the new file on the host before it replaces the old one; `{}` is the new file path.' })),
    notify: Type.Optional(Type.Array(Type.String(), { description: 'Units restarted (once per run) when this file changes.' })),
    hosts: Type.Optional(Selector),
  },
  'A file, written atomically (temp file, check, rename).',
);

export const UnitSchema = obj(
  {
    name: Type.String({ pattern: '^[A-Za-z0-9@._-]+\\.(service|timer|socket|target|path)$', description: 'Unit name, e.g. `hello.service`.' }),
    content: Type.String({ description: 'The unit file. Checked with `systemd-analyze verify` before install.' }),
    enabled: Type.Optional(Type.Boolean({ description: 'Enabled at boot (default true).' })),
    started: Type.Optional(Type.Boolean({ description: 'Running (default true).' })),
    reload: Type.Optional(Type.Boolean({ description: 'Reload instead of restart when a dependency changes.' })),
    ports: Type.Optional(Type.Array(Type.Integer({ minimum: 1, maximum: 65535 }), { description: 'TCP ports the unit listens on (checked for clashes).' })),
    hosts: Type.Optional(Selector),
  },
  'A systemd unit: written, verified, daemon-reloaded, enabled and started; restarted once when it or what it depends on changed.',
);

export const ReleaseSchema = obj(
  {
    artifact: Name,
    dir: AbsPath,
    keep: Type.Optional(Type.Integer({ minimum: 1, maximum: 50, description: 'Releases kept for rollback (default 3).' })),
    owner: Type.Optional(Type.String()),
    notify: Type.Optional(Type.Array(Type.String(), { description: 'Units restarted when the current release changes.' })),
    hosts: Type.Optional(Selector),
  },
  'An artifact installed as `<dir>/releases/<version>` with an atomic `<dir>/current` symlink.',
);

export const PlatformSchema = Type.Object(
  {
    version: Type.Literal(1, { description: 'Format version of this file.' }),
    name: Type.Optional(Name),
    defaults: Type.Optional(DefaultsSchema),
    hosts: Type.Array(HostSchema, { minItems: 1, description: 'The hosts.' }),
    artifacts: Type.Optional(Type.Record(Name, ArtifactSchema, { description: 'Artifacts by name.' })),
    packages: Type.Optional(Type.Array(PackageSchema)),
    groups: Type.Optional(Type.Array(GroupSchema)),
    users: Type.Optional(Type.Array(UserSchema)),
    directories: Type.Optional(Type.Array(DirectorySchema)),
    files: Type.Optional(Type.Array(FileSchema)),
    units: Type.Optional(Type.Array(UnitSchema)),
    releases: Type.Optional(Type.Array(ReleaseSchema)),
    // Component sections: one module each under ./sections/, one recipe each under recipes/.
    consul: Type.Optional(ConsulSection),
    config: Type.Optional(ConfigSection),
    loadbalancer: Type.Optional(LoadbalancerSection),
    gateway: Type.Optional(GatewaySection),
    services: Type.Optional(ServicesSection),
    database: Type.Optional(DatabaseSection),
  },
  {
    additionalProperties: false,
    $id: 'https://rtctl.dev/schemas/platform.schema.json',
    title: 'rtctl platform.yaml',
    description: 'One declarative file for a whole platform on plain Linux hosts.',
  },
);

export type PlatformDoc = Static<typeof PlatformSchema>;
export type HostDoc = Static<typeof HostSchema>;
export type ArtifactDoc = Static<typeof ArtifactSchema>;
export type PackageDoc = Static<typeof PackageSchema>;
export type UserDoc = Static<typeof UserSchema>;
export type GroupDoc = Static<typeof GroupSchema>;
export type DirectoryDoc = Static<typeof DirectorySchema>;
export type FileDoc = Static<typeof FileSchema>;
export type UnitDoc = Static<typeof UnitSchema>;
export type ReleaseDoc = Static<typeof ReleaseSchema>;
