/**
 * The `services` section: the user's own services. Per host: the packages they need, a system user, the
 * release (artifact → `<dir>/releases/<version>`), an environment file, a hardened template unit
 * `<name>@.service` (one instance per port), a Consul service definition per instance when the platform has
 * Consul, and one exec resource per instance that performs the health-gated rollout of that instance.
 *
 * Why exec resources and not unit restarts: the engine restarts a changed unit on every host at once; a rollout
 * must instead drain, stop, switch, start and health-check instances batch by batch. Each batch is its own
 * engine `stage`, so every instance of batch 1 (on any host) finishes before batch 2 starts, and the first
 * failure stops every later stage. The instance's own `current` link (`<dir>/instances/<port>`) is what it runs;
 * the release resource's `<dir>/current` only says which release was installed last.
 */
import { createHash } from 'node:crypto';
import type { Problem } from '../src/config/validate.js';
import type { Host, Platform } from '../src/model/platform.js';
import { selectHosts } from '../src/model/platform.js';
import { makeId, type ExecResource, type Resource } from '../src/model/resources.js';
import type { ServiceDoc } from '../src/model/sections/services.js';
import { hasRefs } from '../src/secrets.js';
import { ROLL_SCRIPT } from '../src/rollout/script.js';
import { batchSize, batches } from '../src/rollout/batches.js';
import { consulDoc, SECRETS as CONSUL_SECRETS, serviceDefinition, type ServiceRegistration } from './consul.js';
import type { Recipe } from './types.js';

/** Stages: services roll out after every other component (Consul, PostgreSQL, load balancers use 0..99). */
export const STAGE_BASE = 100;
const STAGE_STEP = 100;
export const STATE_DIR = '/var/lib/rtctl/services';

/** What `rtctl rollback` / `rtctl restart` ask of the next plan, per service name (set by src/cli/service.ts). */
export interface RolloutOverride {
  mode: 'restart' | 'rollback';
  /** Makes `want` differ from any probed state, so every instance of the service runs once. */
  token: string;
}
export const rolloutOverrides = new WeakMap<Platform, Map<string, RolloutOverride>>();

export interface Instance {
  host: Host;
  port: number;
}

/** Milliseconds of a `500ms`/`5s`/`1m` duration. */
export function durationMs(d: string | undefined, fallback: string): number {
  const m = /^([0-9]+)(ms|s|m)$/.exec(d ?? fallback)!;
  const n = Number(m[1]);
  return m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : n * 60000;
}
const secs = (ms: number) => (ms / 1000).toString();
const wholeSecs = (ms: number) => Math.max(1, Math.ceil(ms / 1000));

export const serviceDir = (s: ServiceDoc) => (s.dir ?? `/opt/${s.name}`).replace(/\/+$/, '');
export const serviceUser = (s: ServiceDoc) => s.user ?? s.name;
export const envPath = (s: ServiceDoc) => `/etc/${s.name}/env`;
export const templateName = (s: ServiceDoc) => `${s.name}@.service`;
export const instanceExecName = (s: ServiceDoc, port: number) => `service-${s.name}@${port}`;
export const surplusExecName = (s: ServiceDoc) => `service-${s.name}-surplus`;

/**
 * Instances in rollout order: first port of every host, then second port of every host, … so that a batch of
 * several instances spreads over hosts.
 */
export function instancesOf(p: Platform, s: ServiceDoc): Instance[] {
  const perHost = new Map<string, Instance[]>();
  for (const e of s.instances) {
    for (const host of selectHosts(p.hosts, e.hosts)) {
      const list = perHost.get(host.name) ?? [];
      for (const port of e.ports) if (!list.some((i) => i.port === port)) list.push({ host, port });
      perHost.set(host.name, list);
    }
  }
  const out: Instance[] = [];
  const lists = p.hosts.map((h) => perHost.get(h.name) ?? []);
  for (let k = 0; lists.some((l) => l.length > k); k++) for (const l of lists) if (l[k]) out.push(l[k]!);
  return out;
}

/** Stage of the first batch of each service: after the services it depends on. */
export function serviceStages(services: ServiceDoc[]): Map<string, number> {
  const byName = new Map(services.map((s) => [s.name, s]));
  const depth = new Map<string, number>();
  const visit = (name: string, seen: Set<string>): number => {
    if (depth.has(name)) return depth.get(name)!;
    const s = byName.get(name);
    if (!s || seen.has(name)) return -1; // unknown or a cycle: reported by the rules
    seen.add(name);
    const d = 1 + Math.max(-1, ...(s.depends_on ?? []).map((x) => visit(x, seen)));
    depth.set(name, d);
    return d;
  };
  return new Map(services.map((s) => [s.name, STAGE_BASE + STAGE_STEP * Math.max(0, visit(s.name, new Set()))]));
}

/** Hardened template unit: one instance per port (`%i`). */
export function renderUnit(s: ServiceDoc, hasEnv: boolean): string {
  const dir = serviceDir(s);
  const user = serviceUser(s);
  const exec = s.command.replaceAll('{release}', `${dir}/instances/%i`);
  const lowPort = s.instances.some((i) => i.ports.some((p) => p < 1024));
  const caps = lowPort ? 'CAP_NET_BIND_SERVICE' : '';
  return `# rtctl: service ${s.name}; do not edit (changes are overwritten)
[Unit]
Description=${s.name} instance on port %i (rtctl)
After=network-online.target
Wants=network-online.target
# Back-off: at most 5 starts in 2 minutes, then the unit stays failed (the next apply starts it again).
StartLimitIntervalSec=120
StartLimitBurst=5

[Service]
Type=simple
User=${user}
Environment=PORT=%i
${hasEnv ? `EnvironmentFile=${envPath(s)}\n` : ''}WorkingDirectory=${dir}/instances/%i
ExecStart=${exec}
Restart=on-failure
RestartSec=3
TimeoutStopSec=30
MemoryMax=${s.resources?.memory ?? '256M'}
CPUQuota=${s.resources?.cpu ?? '100%'}
StateDirectory=${s.name}
UMask=0077
NoNewPrivileges=yes
CapabilityBoundingSet=${caps}
AmbientCapabilities=${caps}
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources

[Install]
WantedBy=multi-user.target
`;
}

export function renderEnv(s: ServiceDoc): string {
  return Object.entries(s.environment ?? {}).map(([k, v]) => `${k}=${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}\n`).join('');
}

/** The Consul registration of one instance (ID `<service>-<port>`, which the rollout puts in maintenance). */
export function registration(s: ServiceDoc, port: number, version: string): ServiceRegistration {
  const h = s.health;
  return {
    id: `${s.name}-${port}`, name: s.name, port, tags: s.tags ?? [], meta: { version, rtctl: 'services' },
    check: { ...(h.http ? { http: h.http } : { tcp: true }), interval: h.interval ?? '1s', timeout: h.timeout ?? '2s' },
  };
}

/** With Consul ACLs, the rollout acts (maintenance, deregistration) with the service's own token, sent on stdin. */
function consulToken(p: Platform, s: ServiceDoc): string | undefined {
  const c = consulDoc(p);
  return c && (c.acl ?? true) ? `\${file:${CONSUL_SECRETS}/service-${s.name}.token}` : undefined;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The exec `run` script: hands the rollout of one instance to a transient systemd unit and reports its result.
 * `unit` and `args` are shell words (quoted by the caller, or expansions such as `"$b"`).
 */
export function runWrapper(unit: string, args: string, token = false): string {
  return `set -u
u=rtctl-rollout-${unit}; d=/run/rtctl-services; mkdir -p -m 0700 "$d"
# A rollout left running by an interrupted rtctl finishes first (it always ends with the instance undrained).
n=0; while systemctl is-active -q "$u.service" && [ $n -lt 600 ]; do sleep 1; n=$((n+1)); done
systemctl reset-failed "$u.service" >/dev/null 2>&1
cat > "$d/$u.sh" <<'RTCTL_ROLL_EOF'
${ROLL_SCRIPT}
RTCTL_ROLL_EOF
rm -f "$d/$u.rc"${token ? '\n# The Consul token arrives on stdin; the rollout reads it from a 0600 file, never from its command line.\n(umask 077; cat > "$d/$u.token")' : ''}
# systemd-run: the rollout goes on on the host if this SSH session dies, so nothing is left half done.
systemd-run --quiet --wait --collect --unit="$u" -p StandardOutput=truncate:"$d/$u.log" -p StandardError=inherit \\
  --setenv=PATH=/opt/consul/current:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${token ? ' --setenv=CONSUL_HTTP_TOKEN_FILE="$d/$u.token"' : ''} \\
  /bin/sh "$d/$u.sh" "$d/$u.rc" ${args} >/dev/null 2>&1
rc=$(cat "$d/$u.rc" 2>/dev/null || echo 1)
cat "$d/$u.log" >&2 2>/dev/null
exit "$rc"`;
}

function rolloutArgs(p: Platform, s: ServiceDoc, port: number, host: Host, version: string, hash: string, mode: string, pauseMs: number): string[] {
  const h = s.health;
  const r = s.rollout ?? {};
  const lbs = s.haproxy ? selectHosts(p.hosts, s.haproxy.hosts).map((x) => `${x.address}:${s.haproxy!.runtime_port}`).join(',') : '-';
  return [
    s.name, String(port), version, hash, mode, serviceDir(s),
    h.http ? `http:${h.http}` : 'tcp',
    secs(durationMs(h.interval, '1s')), secs(durationMs(h.timeout, '2s')), String(h.healthy_threshold ?? 2),
    String(wholeSecs(durationMs(h.deadline, '30s'))), String(wholeSecs(durationMs(r.drain_timeout, '30s'))),
    r.on_failure ?? 'rollback', lbs, s.haproxy?.backend ?? '-', host.address, p.doc.consul ? '1' : '0',
    secs(pauseMs), STATE_DIR,
  ];
}

/** The probe of one instance: `<version> <config hash> <unit state>`, plus `rolling` / `drained` markers. */
export function instanceProbe(s: ServiceDoc, port: number): string {
  const st = `${STATE_DIR}/${s.name}/${port}`;
  return `cat ${st} 2>/dev/null || echo none; systemctl is-active ${s.name}@${port}.service; systemctl is-active -q rtctl-rollout-${s.name}-${port}.service && echo rolling; [ -e ${st}.drained ] && echo drained; true`;
}

function serviceResources(p: Platform, s: ServiceDoc, host: Host, stage: number): Resource[] {
  const all = instancesOf(p, s);
  const mine = all.filter((i) => i.host.name === host.name);
  const artifact = p.artifacts[s.artifact];
  const origin = { path: `services/${p.doc.services!.indexOf(s)}` };
  const out: Resource[] = [];
  const ports = new Set(mine.map((i) => i.port));
  // Surplus instances (on this host, no longer declared): drained, stopped and removed before the batches.
  const known = mine.map((i) => i.port).join(' ');
  out.push({
    type: 'exec', id: makeId('exec', surplusExecName(s)), name: surplusExecName(s), stage, origin,
    probe: `for f in ${STATE_DIR}/${s.name}/*; do b=\${f##*/}; case "$b" in *[!0-9]*) continue;; esac; case " ${known} " in *" $b "*) ;; *) echo "$b";; esac; done`,
    want: '', showState: true,
    description: `drain and remove surplus ${s.name} instances`,
    run: surplusRun(p, s, host),
    ...(consulToken(p, s) !== undefined ? { stdin: consulToken(p, s)! } : {}),
  });
  if (mine.length === 0 || !artifact) return out;

  const user = serviceUser(s);
  const env = renderEnv(s);
  const sensitive = hasRefs(env);
  for (const pkg of [...new Set(s.packages ?? [])]) out.push({ type: 'package', id: makeId('package', pkg), name: pkg, origin });
  out.push({ type: 'user', id: makeId('user', user), name: user, system: true, home: '/nonexistent', shell: '/usr/sbin/nologin', groups: [], origin });
  out.push({ type: 'release', id: makeId('release', serviceDir(s)), dir: serviceDir(s), artifact, keep: s.keep ?? 3, owner: 'root', origin });
  out.push({ type: 'directory', id: makeId('directory', `${serviceDir(s)}/instances`), path: `${serviceDir(s)}/instances`, owner: 'root', group: 'root', mode: '0755', origin });
  out.push({ type: 'directory', id: makeId('directory', `/etc/${s.name}`), path: `/etc/${s.name}`, owner: 'root', group: 'root', mode: '0755', origin });
  if (env) out.push({ type: 'file', id: makeId('file', envPath(s)), path: envPath(s), content: env, owner: 'root', group: 'root', mode: '0600', sensitive, origin });
  const unit = renderUnit(s, env !== '');
  const unitPath = `/etc/systemd/system/${templateName(s)}`;
  // A file, not a unit resource: the engine would restart a changed unit everywhere at once; the rollout restarts it.
  out.push({ type: 'file', id: makeId('file', unitPath), path: unitPath, content: unit, owner: 'root', group: 'root', mode: '0644', sensitive: false, check: templateCheck(s, [...ports][0]!), origin });
  // Config hash: what, besides the version, makes a running instance out of date. Secret values are references here.
  const hash = createHash('sha256').update(JSON.stringify([unit, env])).digest('hex').slice(0, 12);
  const override = rolloutOverrides.get(p)?.get(s.name);
  const token = consulToken(p, s);
  const size = batchSize(s.rollout?.batch_size ?? s.rollout?.max_unavailable ?? 1, all.length);
  const bs = batches(all, size);
  const pause = durationMs(s.rollout?.wait, '0s');
  bs.forEach((batch, k) => {
    for (const i of batch) {
      if (i.host.name !== host.name) continue;
      const name = instanceExecName(s, i.port);
      const mode = override?.mode ?? 'deploy';
      // Registration (check, version in meta, tags) through the Consul recipe: a definition file with the
      // service's own token, checked with `consul validate`. It is in the instance's batch stage, so the agent's
      // reload (a handler: after the stage's changes) publishes the new version only once the instance runs it;
      // a failed instance keeps its old registration. Nothing when the platform has no Consul.
      out.push(...serviceDefinition(p, host, registration(s, i.port, artifact.version), stage + 1 + k).map((r) => ({ ...r, origin })));
      out.push({
        type: 'exec', id: makeId('exec', name), name, stage: stage + 1 + k, origin,
        probe: instanceProbe(s, i.port),
        want: override ? `${override.mode} ${override.token}` : `${artifact.version} ${hash} active`,
        showState: true,
        description: `${mode === 'deploy' ? `roll out ${s.name}@${i.port} → ${artifact.version} (config ${hash})` : `${mode} ${s.name}@${i.port}`}, batch ${k + 1}/${bs.length}`,
        run: runWrapper(q(`${s.name}-${i.port}`), rolloutArgs(p, s, i.port, host, artifact.version, hash, mode, k < bs.length - 1 ? pause : 0).map(q).join(' '), token !== undefined),
        ...(token !== undefined ? { stdin: token } : {}),
      } satisfies ExecResource);
    }
  });
  return out;
}

/** Verify the template through one of its instances (a bare template name is not verifiable). */
export function templateCheck(s: ServiceDoc, port: number): string {
  return `d=$(mktemp -d /run/rtctl-verify.XXXXXX) && cp {} "$d/${templateName(s)}" && systemd-analyze verify "$d/${s.name}@${port}.service"; rc=$?; rm -rf "$d"; exit $rc`;
}

function surplusRun(p: Platform, s: ServiceDoc, host: Host): string {
  const artifact = p.artifacts[s.artifact];
  const known = instancesOf(p, s).filter((i) => i.host.name === host.name).map((i) => i.port).join(' ');
  const args = rolloutArgs(p, s, 0, host, artifact?.version ?? '-', '-', 'remove', 0).map(q);
  args[1] = '"$b"';
  const token = consulToken(p, s) !== undefined;
  return `set -u; rc=0${token ? '; t=$(mktemp); cat > "$t"' : ''}
for f in ${STATE_DIR}/${s.name}/*; do b=\${f##*/}; case "$b" in *[!0-9]*) continue;; esac
  case " ${known} " in *" $b "*) continue;; esac
  ( ${runWrapper(`${q(`${s.name}-`)}"$b"`, args.join(' '), token)} ) ${token ? '< "$t" ' : ''}|| rc=1
done${token ? '; rm -f "$t"' : ''}; exit $rc`;
}

export const services: Recipe = {
  name: 'services',
  resources(p: Platform, host: Host): Resource[] {
    const list = p.doc.services ?? [];
    const stages = serviceStages(list);
    return list.flatMap((s) => serviceResources(p, s, host, stages.get(s.name)!));
  },
  rules: servicesRules,
};

export function servicesRules(p: Platform): Problem[] {
  const list = p.doc.services ?? [];
  const out: Problem[] = [];
  const names = new Map<string, number>();
  const used = new Map<string, string>();
  list.forEach((s, i) => {
    const at = (...rest: (string | number)[]) => ['services', i, ...rest];
    if (names.has(s.name)) out.push({ path: at('name'), message: `service "${s.name}" is already defined at services/${names.get(s.name)}` });
    else names.set(s.name, i);
    if (!p.artifacts[s.artifact]) out.push({ path: at('artifact'), message: `unknown artifact "${s.artifact}" (not in artifacts)` });
    s.instances.forEach((e, j) => {
      const hosts = selectHosts(p.hosts, e.hosts);
      if (hosts.length === 0) out.push({ path: at('instances', j, 'hosts'), message: `no host matches ${e.hosts.join(', ')}` });
      e.ports.forEach((port, k) => {
        for (const h of hosts) {
          const key = `${h.name}:${port}`;
          const where = `services/${i}/instances/${j}/ports/${k}`;
          const prev = used.get(key);
          if (prev && prev !== where) {
            out.push({ path: at('instances', j, 'ports', k), message: `port ${port} on ${h.name} is already used by ${prev}` });
            break;
          }
          used.set(key, where);
        }
      });
    });
    if (s.health.http !== undefined && !s.health.http.startsWith('/')) {
      out.push({ path: at('health', 'http'), message: `health check path "${s.health.http}" must start with / (e.g. /${s.health.http})` });
    }
    if (s.health.http === undefined && !s.health.tcp) out.push({ path: at('health'), message: 'a health check needs `http: /path` or `tcp: true`' });
    for (const key of ['batch_size', 'max_unavailable'] as const) {
      const v = s.rollout?.[key];
      if (v === undefined) continue;
      const n = typeof v === 'number' ? v : Number(v.slice(0, -1));
      const pct = typeof v === 'string';
      if (n < 1 || (pct && n > 100)) out.push({ path: at('rollout', key), message: `${key} must be at least 1 instance, or a percentage from 1% to 100% (got ${pct ? v : n})` });
    }
    (s.depends_on ?? []).forEach((d, k) => {
      if (d === 'database') {
        if (!p.doc.database) out.push({ path: at('depends_on', k), message: 'depends on `database`, but this platform has no database section' });
      } else if (d === s.name) out.push({ path: at('depends_on', k), message: `service "${s.name}" can't depend on itself` });
      else if (!list.some((x) => x.name === d)) out.push({ path: at('depends_on', k), message: `unknown dependency "${d}": not a service in this file (nor \`database\`)` });
    });
  });
  return out;
}
