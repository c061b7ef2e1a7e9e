import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import type { ExecResource, FileResource } from '../../../src/model/resources.js';
import { batchSize, batches } from '../../../src/rollout/batches.js';
import { ROLL_SCRIPT } from '../../../src/rollout/script.js';
import { durationMs, instancesOf, registration, renderUnit, rolloutOverrides, runWrapper, serviceStages, services, STAGE_BASE } from '../../../recipes/services.js';
import { fakeSecrets, platformFrom, problemsOf } from '../helpers.js';

const SVC = `version: 1
hosts:
  - { name: h1, address: 198.18.1.11, labels: [lb] }
  - { name: h2, address: 198.18.1.12, labels: [app] }
  - { name: h3, address: 198.18.1.13, labels: [app] }
artifacts:
  hello: { url: https://artifacts.example/hello.py, sha256: ${'a'.repeat(64)}, version: 2.0.0, filename: hello.py }
services:
  - name: hello
    artifact: hello
    command: /usr/bin/python3 {release}/hello.py
    packages: [python3]
    environment: { HELLO_GREETING: hi, HELLO_TOKEN: "\${file:token}" }
    instances:
      - { hosts: [app], ports: [8080, 8081] }
    resources: { memory: 128M, cpu: 50% }
    health: { http: /health, interval: 500ms, timeout: 1s, healthy_threshold: 2, deadline: 20s }
    rollout: { batch_size: "50%", wait: 2s }
    haproxy: { hosts: [lb], runtime_port: 9999, backend: be_hello }
  - name: worker
    artifact: hello
    command: /usr/bin/python3 {release}/hello.py
    instances:
      - { hosts: [h3], ports: [9000] }
    health: { tcp: true }
    depends_on: [hello]
`;
const SECRETS = { 'file:token': 't0k' };

const problems = (yaml: string) => problemsOf(yaml, fakeSecrets(SECRETS));

const p = platformFrom(SVC, fakeSecrets(SECRETS));
const host = (n: string) => p.hosts.find((h) => h.name === n)!;
const svc = (n: string) => p.doc.services!.find((s) => s.name === n)!;

describe('services: validation at the line', () => {
  it('the example is valid', () => expect(problems(SVC)).toEqual([]));

  it('a port clash between two services on one host', () => {
    expect(problems(SVC.replace('ports: [9000]', 'ports: [8081]'))).toEqual([
      '24:32: services/1/instances/0/ports/0: port 8081 on h3 is already used by services/0/instances/0/ports/1',
    ]);
  });

  it('a port listed twice for the same hosts', () => {
    expect(problems(SVC.replace('ports: [8080, 8081]', 'ports: [8080, 8080]'))).toEqual([
      '15:39: services/0/instances/0/ports/1: port 8080 on h2 is already used by services/0/instances/0/ports/0',
    ]);
  });

  it('a health check path without a leading slash', () => {
    expect(problems(SVC.replace('http: /health', 'http: health'))).toEqual([
      '17:21: services/0/health/http: health check path "health" must start with / (e.g. /health)',
    ]);
  });

  it('a batch size of 0, or more than 100%', () => {
    expect(problems(SVC.replace('batch_size: "50%"', 'batch_size: 0'))).toEqual([
      '18:28: services/0/rollout/batch_size: batch_size must be at least 1 instance, or a percentage from 1% to 100% (got 0)',
    ]);
    expect(problems(SVC.replace('batch_size: "50%"', 'max_unavailable: "150%"'))).toEqual([
      '18:33: services/0/rollout/max_unavailable: max_unavailable must be at least 1 instance, or a percentage from 1% to 100% (got 150%)',
    ]);
    expect(problems(SVC.replace('batch_size: "50%"', 'batch_size: "half"'))).toEqual([
      '18:28: services/0/rollout/batch_size: "half" must be a number of instances or a percentage such as "25%"',
    ]);
  });

  it('an unknown dependency; `database` without a database section', () => {
    expect(problems(SVC.replace('depends_on: [hello]', 'depends_on: [helo]'))).toEqual([
      '26:18: services/1/depends_on/0: unknown dependency "helo": not a service in this file (nor `database`)',
    ]);
    expect(problems(SVC.replace('depends_on: [hello]', 'depends_on: [database]'))).toEqual([
      '26:18: services/1/depends_on/0: depends on `database`, but this platform has no database section',
    ]);
  });

  it('an unknown artifact', () => {
    expect(problems(SVC.replace('artifact: hello\n    command', 'artifact: nope\n    command'))).toEqual([
      '10:15: services/0/artifact: unknown artifact "nope" (not in artifacts)',
    ]);
  });
});

describe('services: batches and stages', () => {
  it('counts and percentages, rounded up, at least 1', () => {
    expect([batchSize(1, 3), batchSize(5, 3), batchSize('25%', 3), batchSize('50%', 3), batchSize('100%', 3), batchSize('50%', 0)]).toEqual([1, 3, 1, 2, 3, 1]);
    expect(batches([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('instances spread over hosts: first port of every host, then the second', () => {
    expect(instancesOf(p, svc('hello')).map((i) => `${i.host.name}:${i.port}`)).toEqual(['h2:8080', 'h3:8080', 'h2:8081', 'h3:8081']);
  });

  it('a service rolls out after the services it depends on', () => {
    expect(serviceStages(p.doc.services!)).toEqual(new Map([['hello', STAGE_BASE], ['worker', STAGE_BASE + 100]]));
  });

  it('durations', () => expect([durationMs('500ms', '1s'), durationMs('2s', '1s'), durationMs('1m', '1s'), durationMs(undefined, '30s')]).toEqual([500, 2000, 60000, 30000]));
});

describe('services recipe', () => {
  const rs = services.resources(p, host('h2'));
  const byId = new Map(rs.map((r) => [r.id, r]));

  it('per host: packages, user, release, env, template unit, one rollout exec per instance, the surplus exec', () => {
    expect(rs.map((r) => r.id)).toEqual([
      'exec:service-hello-surplus', 'package:python3', 'user:hello', 'release:/opt/hello', 'directory:/opt/hello/instances', 'directory:/etc/hello',
      'file:/etc/hello/env', 'file:/etc/systemd/system/hello@.service', 'exec:service-hello@8080', 'exec:service-hello@8081',
      'exec:service-worker-surplus',
    ]);
    expect(services.resources(p, host('h1')).map((r) => r.id)).toEqual(['exec:service-hello-surplus', 'exec:service-worker-surplus']);
  });

  it('batches are stages: 50% of 4 instances = 2 per batch, surplus removal first', () => {
    const stage = (id: string) => byId.get(id)!.stage;
    expect([stage('exec:service-hello-surplus'), stage('exec:service-hello@8080'), stage('exec:service-hello@8081')]).toEqual([100, 101, 102]);
    expect(services.resources(p, host('h3')).filter((r) => r.type === 'exec').map((r) => `${r.id}@${r.stage}`)).toEqual([
      'exec:service-hello-surplus@100', 'exec:service-hello@8080@101', 'exec:service-hello@8081@102', 'exec:service-worker-surplus@200', 'exec:service-worker@9000@201',
    ]);
  });

  it('the environment file holds a secret reference: sensitive, 0600', () => {
    expect(byId.get('file:/etc/hello/env')).toMatchObject({ content: 'HELLO_GREETING=hi\nHELLO_TOKEN=${file:token}\n', sensitive: true, mode: '0600' });
  });

  it('the template unit is a checked file (not a unit the engine would restart everywhere at once)', () => {
    const f = byId.get('file:/etc/systemd/system/hello@.service') as FileResource;
    expect(f.check).toBe('d=$(mktemp -d /run/rtctl-verify.XXXXXX) && cp {} "$d/hello@.service" && systemd-analyze verify "$d/hello@8080.service"; rc=$?; rm -rf "$d"; exit $rc');
    expect(f.notify).toBeUndefined();
  });

  it('hardened unit with the limits from platform.yaml', () => {
    const u = renderUnit(svc('hello'), true);
    for (const line of [
      'User=hello', 'Environment=PORT=%i', 'EnvironmentFile=/etc/hello/env', 'ExecStart=/usr/bin/python3 /opt/hello/instances/%i/hello.py',
      'Restart=on-failure', 'RestartSec=3', 'StartLimitBurst=5', 'MemoryMax=128M', 'CPUQuota=50%', 'NoNewPrivileges=yes', 'ProtectSystem=strict',
      'ProtectHome=yes', 'PrivateTmp=yes', 'PrivateDevices=yes', 'CapabilityBoundingSet=', 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX',
      'RestrictNamespaces=yes', 'SystemCallFilter=@system-service', 'ProtectKernelTunables=yes', 'ProtectKernelModules=yes',
    ]) expect(u.split('\n')).toContain(line);
    expect(renderUnit({ ...svc('hello'), instances: [{ hosts: ['h2'], ports: [80] }] }, false).split('\n')).toContain('CapabilityBoundingSet=CAP_NET_BIND_SERVICE');
  });

  it('rollout exec: probe, want (version, config hash, active), arguments', () => {
    const e = byId.get('exec:service-hello@8080') as ExecResource;
    expect(e.probe).toBe('cat /var/lib/rtctl/services/hello/8080 2>/dev/null || echo none; systemctl is-active hello@8080.service; systemctl is-active -q rtctl-rollout-hello-8080.service && echo rolling; [ -e /var/lib/rtctl/services/hello/8080.drained ] && echo drained; true');
    expect(e.want).toMatch(/^2\.0\.0 [0-9a-f]{12} active$/);
    expect(e.description).toMatch(/^roll out hello@8080 → 2\.0\.0 \(config [0-9a-f]{12}\), batch 1\/2$/);
    expect(e.run).toContain(`/bin/sh "$d/$u.sh" "$d/$u.rc" 'hello' '8080' '2.0.0' '${e.want.split(' ')[1]}' 'deploy' '/opt/hello' 'http:/health' '0.5' '1' '2' '20' '30' 'rollback' '198.18.1.11:9999' 'be_hello' '198.18.1.12' '0' '2' '/var/lib/rtctl/services' >/dev/null 2>&1`);
    // The last batch does not wait after itself.
    expect((byId.get('exec:service-hello@8081') as ExecResource).run).toContain(`'198.18.1.12' '0' '0' '/var/lib/rtctl/services'`);
  });

  it('a config change (environment) changes the hash; a version change keeps it', () => {
    const want = (yaml: string) => (services.resources(platformFrom(yaml, fakeSecrets(SECRETS)), host('h2')).find((r) => r.id === 'exec:service-hello@8080') as ExecResource).want;
    const base = want(SVC);
    expect(want(SVC.replace('HELLO_GREETING: hi', 'HELLO_GREETING: hey')).split(' ')[1]).not.toBe(base.split(' ')[1]);
    expect(want(SVC.replace('version: 2.0.0', 'version: 2.0.1'))).toBe(base.replace('2.0.0', '2.0.1'));
  });

  it('rtctl rollback/restart: every instance runs once in that mode', () => {
    const q = platformFrom(SVC, fakeSecrets(SECRETS));
    rolloutOverrides.set(q, new Map([['hello', { mode: 'rollback', token: 'abc' }]]));
    const e = services.resources(q, host('h2')).find((r) => r.id === 'exec:service-hello@8080') as ExecResource;
    expect(e.want).toBe('rollback abc');
    expect(e.description).toBe('rollback hello@8080, batch 1/2');
    expect(e.run).toContain(`'rollback' '/opt/hello'`);
  });

  it('no Consul definition without a consul section', () => {
    expect(rs.some((r) => r.id.startsWith('file:/etc/consul.d/'))).toBe(false);
    expect((byId.get('exec:service-hello@8080') as ExecResource).stdin).toBeUndefined();
  });

  it('with Consul: a definition per instance (check, version, tags) and the service token on the rollout\'s stdin', () => {
    const yaml = SVC.replace('artifacts:\n', `artifacts:\n  consul: { url: https://artifacts.example/consul.zip, sha256: ${'b'.repeat(64)}, version: 1.8.7, filename: consul }\n`)
      .replace('services:\n', 'consul: { artifact: consul, servers: [h1, h2, h3] }\nservices:\n').replace('    packages: [python3]\n', '    packages: [python3]\n    tags: [http]\n');
    const q = platformFrom(yaml, fakeSecrets(SECRETS));
    const list = services.resources(q, host('h2'));
    const def = list.find((r) => r.id === 'file:/etc/consul.d/service-hello-8080.json') as FileResource;
    expect(JSON.parse(def.content).service).toMatchObject({
      id: 'hello-8080', name: 'hello', port: 8080, address: '198.18.1.12', tags: ['http'], meta: { version: '2.0.0', rtctl: 'services' },
      checks: [{ http: 'http://127.0.0.1:8080/health', interval: '500ms', timeout: '1s' }],
      token: '${file:.rtctl/secrets/consul/service-hello.token}',
    });
    // In the instance's batch stage, just before its rollout: Consul's reload publishes the version once it runs.
    expect(def.stage).toBe(101);
    expect(list.map((r) => r.id).slice(-5, -1)).toEqual(['file:/etc/consul.d/service-hello-8080.json', 'exec:service-hello@8080', 'file:/etc/consul.d/service-hello-8081.json', 'exec:service-hello@8081']);
    const e = list.find((r) => r.id === 'exec:service-hello@8080') as ExecResource;
    expect(e.stdin).toBe('${file:.rtctl/secrets/consul/service-hello.token}');
    expect(e.run).toContain('(umask 077; cat > "$d/$u.token")');
    expect(e.run).toContain(`'198.18.1.12' '1' '2' '/var/lib/rtctl/services'`);
    expect(registration(svc('worker'), 9000, '1').check).toEqual({ tcp: true, interval: '1s', timeout: '2s' });
  });

  it('the scripts are valid POSIX sh', () => {
    for (const script of [ROLL_SCRIPT, runWrapper("'hello-8080'", "'a' 'b'"), (byId.get('exec:service-hello-surplus') as ExecResource).run]) {
      expect(() => execFileSync('sh', ['-n', '-c', script])).not.toThrow();
    }
    expect(ROLL_SCRIPT).not.toContain('@{');
  });
});
