/**
 * The foundation end to end, on a 4-host lab: examples/foundation.platform.yaml (rewritten only to this lab's
 * addresses, key paths and the work dir's layout) applied to bare hosts as `deploy` with sudo, then idempotence, single changes,
 * removal, an artifact bump, stale plans, host keys, a stopped host, concurrent applies and interrupts.
 * The tests share one lab and run in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startHost, stopHost } from '../../src/lab/index.js';
import { ssh, teardownLab, withLab, type LabInfo } from './helpers/lab.js';
import { cliIn } from './helpers/cli.js';

const LAB = 'fnd';
const ROOT = resolve(import.meta.dirname, '../..');
const RTCTL = join(ROOT, 'bin/rtctl');
let lab: LabInfo;
let work: string;
let token: string;

const rtctl = cliIn(() => work);

const prefix = () => lab.gateway.replace(/\.1$/, '.');
/** The foundation example, pointed at this lab, as platform.yaml in the work dir (examples/ copied there), with optional text edits. */
function writePlatform(edit: (s: string) => string = (s) => s, name = 'platform.yaml') {
  let s = readFileSync(join(ROOT, 'examples/foundation.platform.yaml'), 'utf8')
    .replaceAll('/var/lib/rtctl/lab/default/', `${lab.dir}/`)
    .replaceAll('198.18.1.', prefix())
    .replace('path: hello/hello.py', 'path: examples/hello/hello.py')
    .replace('template: motd.mustache', 'template: examples/motd.mustache');
  s = edit(s);
  writeFileSync(join(work, name), s);
}

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const addr = (h: string) => lab.hosts.find((x) => x.name === h)!.address;

async function http(host: string, path: string): Promise<string> {
  const r = await fetch(`http://${addr(host)}:8080${path}`, { signal: AbortSignal.timeout(5000) });
  return r.text();
}

beforeAll(async () => {
  lab = await withLab(LAB, 4);
  work = mkdtempSync(join(tmpdir(), 'rtctl-e2e-'));
  cpSync(join(ROOT, 'examples'), join(work, 'examples'), { recursive: true });
  mkdirSync(join(work, '.rtctl/secrets'), { recursive: true });
  token = `tok-${Math.random().toString(36).slice(2)}-secret`;
  writeFileSync(join(work, '.rtctl/secrets/hello-token'), token, { mode: 0o600 });
  writePlatform();
});

afterAll(async () => {
  await teardownLab(LAB);
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('foundation on a real lab', () => {
  it('validates the example platform without contacting any host', async () => {
    const r = await rtctl(['validate']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/platform\.yaml: valid \(4 hosts, \d+ resources\)/);
  });

  it('applies the example platform to bare hosts as deploy with sudo', async () => {
    const plan = await rtctl(['plan', '--detailed-exitcode']);
    expect(plan.code).toBe(2);
    expect(plan.out).toContain('+ release:/opt/hello');
    expect(plan.out).toMatch(/Plan: \d+ to create, 4 to change, 0 to destroy, 0 to restart, on 4 of 4 hosts\./);
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.all).toBe(0);
    expect(r.out).toContain('Apply complete.');
    for (const h of ['h1', 'h2', 'h3']) expect(JSON.parse(await http(h, '/version'))).toEqual({ version: '1.0.0' });
    // Runs as the hardened unit's user, not root.
    expect((await ssh(lab, 'h1', 'ps -o user= -C python3')).stdout.trim()).toBe('hello');
  });

  it('plans no changes on a second run (--detailed-exitcode 0)', async () => {
    const r = await rtctl(['plan', '--detailed-exitcode']);
    expect(r.code, r.all).toBe(0);
    expect(r.out).toContain('No changes. 4 hosts are in sync.');
  });

  it('never prints the secret, and writes its file with the given restrictive mode', async () => {
    const plan = await rtctl(['plan', '--json']);
    expect(plan.all).not.toContain(token);
    const st = await ssh(lab, 'h1', 'sudo stat -c "%a %U:%G" /etc/hello/token && sudo cat /etc/hello/token');
    expect(st.stdout.split('\n')).toEqual(['640 root:hello', token]);
    expect((await ssh(lab, 'h1', 'sudo stat -c %a /var/lib/rtctl/manifest')).stdout.trim()).toBe('600');
  });

  it('records ownership and an audit trail on each host', async () => {
    const m = (await ssh(lab, 'h4', 'sudo cat /var/lib/rtctl/manifest')).stdout;
    expect(m.split('\n').filter(Boolean).sort()).toEqual(['file\t/etc/motd', 'package\tjq']);
    const audit = (await ssh(lab, 'h1', 'sudo tail -n 1 /var/log/rtctl/audit.log')).stdout;
    expect(JSON.parse(audit)).toMatchObject({ result: 'ok', by: expect.stringContaining('@') });
  });

  it('a changed file plans and applies exactly that, and restarts its unit once', async () => {
    writePlatform((s) => s.replace('HELLO_GREETING=hello from rtctl', 'HELLO_GREETING=hi again'));
    const before = (await ssh(lab, 'h2', 'systemctl show -p MainPID --value hello')).stdout.trim();
    const plan = await rtctl(['plan', '--target', 'h2']);
    expect(plan.out).toContain('~ file:/etc/hello/hello.env  content changed');
    expect(plan.out).toContain('-HELLO_GREETING=hello from rtctl');
    expect(plan.out).toContain('+HELLO_GREETING=hi again');
    expect(plan.out).toContain('↻ unit:hello.service  restart (file:/etc/hello/hello.env changed)');
    expect(plan.out).toContain('Plan: 0 to create, 1 to change, 0 to destroy, 1 to restart, on 1 of 4 hosts.');
    const r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.all).toBe(0);
    expect(JSON.parse(await http('h2', '/')).greeting).toBe('hi again');
    expect((await ssh(lab, 'h2', 'systemctl show -p MainPID --value hello')).stdout.trim()).not.toBe(before);
    expect((await rtctl(['plan', '--detailed-exitcode'])).code).toBe(0);
  });

  it('a resource removed from platform.yaml is planned for removal and removed; nothing else is touched', async () => {
    await ssh(lab, 'h4', 'echo mine | sudo tee /etc/not-rtctls >/dev/null');
    writePlatform((s) => s.replace(/  - path: \/etc\/motd\n    template: examples\/motd.mustache\n/, '').replace('HELLO_GREETING=hello from rtctl', 'HELLO_GREETING=hi again'));
    const plan = await rtctl(['plan', '--detailed-exitcode']);
    expect(plan.code).toBe(2);
    expect(plan.out).toContain('- file:/etc/motd');
    expect(plan.out).toContain('Plan: 0 to create, 0 to change, 4 to destroy, 0 to restart, on 4 of 4 hosts.');
    expect((await rtctl(['apply', '--auto-approve'])).code).toBe(0);
    expect((await ssh(lab, 'h4', 'test -e /etc/motd; echo $?; cat /etc/not-rtctls')).stdout.split('\n')).toEqual(['1', 'mine']);
    expect((await rtctl(['plan', '--detailed-exitcode'])).code).toBe(0);
  });

  it('an artifact version bump uploads and switches the release, keeping the old one for rollback', async () => {
    const v2 = join(work, 'hello-1.0.1.py');
    writeFileSync(v2, readFileSync(join(ROOT, 'examples/hello/hello.py'), 'utf8').replace('VERSION = "1.0.0"', 'VERSION = "1.0.1"'));
    const bump = (s: string) =>
      s.replace('HELLO_GREETING=hello from rtctl', 'HELLO_GREETING=hi again')
        .replace(/  - path: \/etc\/motd\n    template: examples\/motd.mustache\n/, '')
        .replace('path: examples/hello/hello.py', `path: ${v2}`)
        .replace(/sha256: [0-9a-f]{64}/, `sha256: ${sha(v2)}`)
        .replace('version: 1.0.0', 'version: 1.0.1');
    writePlatform(bump);
    const plan = await rtctl(['plan']);
    expect(plan.out).toContain('~ release:/opt/hello  hello 1.0.0 → 1.0.1; upload');
    expect(plan.out).toContain('↻ unit:hello.service  restart (release:/opt/hello changed)');
    expect(plan.out).toContain('Plan: 0 to create, 3 to change, 0 to destroy, 3 to restart, on 3 of 4 hosts.');
    expect((await rtctl(['apply', '--auto-approve'])).code).toBe(0);
    for (const h of ['h1', 'h2', 'h3']) expect(JSON.parse(await http(h, '/version')).version).toBe('1.0.1');
    expect((await ssh(lab, 'h1', 'ls /opt/hello/releases; readlink /opt/hello/current')).stdout.split('\n')).toEqual(['1.0.0', '1.0.1', 'releases/1.0.1']);
    expect((await rtctl(['plan', '--detailed-exitcode'])).code).toBe(0);
  });

  it('refuses a stale saved plan, naming the host, and changes nothing', async () => {
    writePlatform((s) => s.replace('HELLO_GREETING=hello from rtctl', 'HELLO_GREETING=stale test').replace(/  - path: \/etc\/motd\n    template: examples\/motd.mustache\n/, ''), 'stale.yaml');
    const saved = await rtctl(['plan', '-f', 'stale.yaml', '--out', 'stale.plan']);
    expect(saved.code).toBe(0);
    expect(readFileSync(join(work, 'stale.plan'), 'utf8')).not.toContain(token);
    await ssh(lab, 'h3', 'echo "# edited by hand" | sudo tee -a /etc/hello/hello.env >/dev/null');
    const r = await rtctl(['apply', 'stale.plan']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: saved plan is stale: h3 changed since the plan was made/m);
    expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
    expect((await ssh(lab, 'h1', 'grep GREETING /etc/hello/hello.env')).stdout.trim()).not.toContain('stale test');
  });

  it('applies a fresh saved plan exactly', async () => {
    expect((await rtctl(['plan', '-f', 'stale.yaml', '--out', 'fresh.plan'])).code).toBe(0);
    const r = await rtctl(['apply', 'fresh.plan']);
    expect(r.code, r.all).toBe(0);
    for (const h of ['h1', 'h2', 'h3']) expect(JSON.parse(await http(h, '/')).greeting).toBe('stale test');
  });

  it('refuses a changed host key, always, and an unknown one unless told to accept it', async () => {
    const kh = readFileSync(lab.knownHostsPath, 'utf8');
    const lines = kh.split('\n').filter(Boolean);
    const h1Key = lines.find((l) => l.startsWith(`${addr('h1')} `))!.split(' ').slice(1).join(' ');
    const changed = lines.map((l) => (l.startsWith(`${addr('h2')} `) ? `${addr('h2')} ${h1Key}` : l)).join('\n');
    writeFileSync(join(work, 'kh-changed'), `${changed}\n`);
    writePlatform((s) => s.replace(`${lab.dir}/known_hosts`, join(work, 'kh-changed')), 'changed-key.yaml');
    let r = await rtctl(['plan', '-f', 'changed-key.yaml', '--accept-new-host-keys']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('h2');
    expect(r.err).toMatch(/CHANGED/);

    const unknown = lines.filter((l) => !l.startsWith(`${addr('h2')} `)).join('\n');
    writeFileSync(join(work, 'kh-unknown'), `${unknown}\n`);
    writePlatform((s) => s.replace(`${lab.dir}/known_hosts`, join(work, 'kh-unknown')), 'unknown-key.yaml');
    r = await rtctl(['plan', '-f', 'unknown-key.yaml', '--target', 'h2']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/unknown host key/);
    r = await rtctl(['plan', '-f', 'unknown-key.yaml', '--accept-new-host-keys']);
    expect(r.code, r.all).toBe(0);
    expect(readFileSync(join(work, 'kh-unknown'), 'utf8')).toContain(addr('h2'));
  });

  it('a stopped host gives one clear line naming it', async () => {
    await stopHost(LAB, 'h4');
    try {
      writePlatform((s) => s.replace('defaults:\n', 'defaults:\n  connect_timeout: 3\n'), 'timeout.yaml');
      const r = await rtctl(['plan', '-f', 'timeout.yaml']);
      expect(r.code).toBe(1);
      const lines = r.err.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^error: h4 \\(${addr('h4').replaceAll('.', '\\.')}:22\\): `));
    } finally {
      await startHost(LAB, 'h4');
    }
  });

  it('refuses a second concurrent apply, naming the holder', async () => {
    // A file whose check takes a few seconds keeps the first apply (and its lock) busy.
    writePlatform((s) => s.replace('    notify: [hello.service]\n    hosts: [app]', '    notify: [hello.service]\n    check: "sleep 6; test -s {}"\n    hosts: [app]').replace('HELLO_GREETING=hello from rtctl', 'HELLO_GREETING=slow'), 'slow.yaml');
    const first = rtctl(['apply', '-f', 'slow.yaml', '--auto-approve']);
    await new Promise((r) => setTimeout(r, 3000));
    const second = await rtctl(['apply', '-f', 'slow.yaml', '--auto-approve']);
    expect(second.code).toBe(1);
    expect(second.err).toMatch(/h\d is locked by \S+@\S+ \(pid \d+, run \w+\) since 20\d\d-/);
    const r = await first;
    expect(r.code, r.all).toBe(0);
    expect((await rtctl(['plan', '-f', 'slow.yaml', '--detailed-exitcode'])).code).toBe(0);
  });

  it('an interrupted apply leaves no half-written file, and the next apply completes it', async () => {
    writePlatform((s) => s.replace('    notify: [hello.service]\n    hosts: [app]', '    notify: [hello.service]\n    check: "sleep 4; test -s {}"\n    hosts: [app]').replace('HELLO_GREETING=hello from rtctl', 'HELLO_GREETING=interrupted'), 'int.yaml');
    const run = execa(RTCTL, ['apply', '-f', 'int.yaml', '--auto-approve', '--parallel', '1'], { cwd: work, reject: false, env: { NO_COLOR: '1' }, stdin: 'ignore' });
    // Interrupt while the first host's slow file check runs (its step line is printed when it starts).
    await new Promise<void>((resolve) => {
      let seen = '';
      run.stdout?.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('write /etc/hello/hello.env')) resolve();
      });
    });
    await new Promise((r) => setTimeout(r, 500));
    run.kill('SIGINT');
    const r = await run;
    expect(r.exitCode).toBe(130);
    expect(r.stderr).toMatch(/Apply interrupted: \d+ change\(s\) done, \d+ not done\./);
    expect(r.stderr).toContain('Not done:');
    for (const h of ['h1', 'h2', 'h3']) {
      expect((await ssh(lab, h, 'ls -a /etc/hello | grep -c "^\\.rtctl-" || true')).stdout.trim()).toBe('0');
    }
    const again = await rtctl(['apply', '-f', 'int.yaml', '--auto-approve']);
    expect(again.code, again.all).toBe(0);
    for (const h of ['h1', 'h2', 'h3']) expect(JSON.parse(await http(h, '/')).greeting).toBe('interrupted');
    expect((await rtctl(['plan', '-f', 'int.yaml', '--detailed-exitcode'])).code).toBe(0);
  });

  it('a failing check names host, resource, step and remote stderr, and leaves the old file serving', async () => {
    writePlatform((s) => s.replace('    notify: [hello.service]\n    hosts: [app]', '    notify: [hello.service]\n    check: "grep -q HELLO_PORT=9 {} || { echo port must start with 9 >&2; exit 1; }"\n    hosts: [app]').replace('HELLO_GREETING=hello from rtctl', 'HELLO_GREETING=never'), 'failcheck.yaml');
    const r = await rtctl(['apply', '-f', 'failcheck.yaml', '--auto-approve', '--parallel', '1']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^error: Apply failed: 0 change\(s\) done, \d+ not done\.$/m);
    expect(r.err).toMatch(/^h1: file:\/etc\/hello\/hello\.env: write \/etc\/hello\/hello\.env: exit 65: check failed \(grep -q HELLO_PORT=9 .*\), \/etc\/hello\/hello\.env left unchanged:$/m);
    expect(r.err).toContain('port must start with 9');
    expect(JSON.parse(await http('h1', '/')).greeting).toBe('interrupted');
    expect((await ssh(lab, 'h1', 'ls -a /etc/hello | grep -c "^\\.rtctl-" || true')).stdout.trim()).toBe('0');
  });

  it('bad input: clear message at its position, non-zero exit, no host contacted', async () => {
    writeFileSync(join(work, 'bad.yaml'), 'version: 1\nhosts:\n  - { name: h1, address: 198.18.250.1, port: 70000 }\n');
    const r = await rtctl(['apply', '-f', 'bad.yaml', '--auto-approve']);
    expect(r.code).toBe(1);
    expect(r.err).toContain('bad.yaml:3:46: hosts/0/port: must be at most 65535, not 70000');
    expect(r.err).not.toMatch(/\n\s+at /);
  });
});
