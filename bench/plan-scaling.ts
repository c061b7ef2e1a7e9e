/**
 * bench/plan-scaling: a no-op `rtctl plan` on 1, 5 and 20 lab hosts, next to
 *   - the floor: OpenSSH `ssh host true` to the same hosts, all in parallel;
 *   - `ansible-playbook --check` (ansible-core from Debian) with the same 15 resources per host, tuned fairly:
 *     forks ≥ hosts, pipelining, ControlPersist, no fact gathering.
 * Prints medians and ratios from one run. Needs root (it brings up its own lab `bench` and removes it).
 *
 *   node dist/bench/plan-scaling.js [--runs 5] [--no-ansible]
 */
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { labDown, labUp, type LabInfo } from '../src/lab/index.js';

const ROOT = resolve(import.meta.dirname, '../..');
const RTCTL = join(ROOT, 'bin/rtctl');
const LAB = 'bench';
const SIZES = [1, 5, 20];
const runs = Number(process.argv[process.argv.indexOf('--runs') + 1]) || 5;
const withAnsible = !process.argv.includes('--no-ansible');

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** 15 resources per host: 1 group, 1 user, 5 directories, 8 files (+ python3 for Ansible's sake). */
function platformYaml(lab: LabInfo, n: number): string {
  // python3 is only there for Ansible; it is part of every size so that each plan is a no-op.
  const packages = withAnsible ? 'packages:\n  - { name: python3 }\n  - { name: python3-apt }\n' : '';
  const hosts = lab.hosts.slice(0, n).map((h) => `  - { name: ${h.name}, address: ${h.address} }`).join('\n');
  const dirs = Array.from({ length: 5 }, (_, i) => `  - { path: /srv/bench/d${i}, owner: bench, group: bench, mode: "0750" }`).join('\n');
  const files = Array.from({ length: 8 }, (_, i) => `  - { path: /srv/bench/d${i % 5}/f${i}.conf, content: "key${i}=value${i}\\n", owner: bench, group: bench, mode: "0640" }`).join('\n');
  return `version: 1
defaults: { user: deploy, become: true, key: ${lab.keyPath}, known_hosts: ${lab.knownHostsPath} }
hosts:
${hosts}
groups:
  - { name: bench }
users:
  - { name: bench }
directories:
${dirs}
files:
${files}
${packages}`;
}

function playbook(): string {
  const dirs = Array.from({ length: 5 }, (_, i) => `    - { name: d${i}, file: { path: /srv/bench/d${i}, state: directory, owner: bench, group: bench, mode: "0750" } }`).join('\n');
  const files = Array.from({ length: 8 }, (_, i) => `    - { name: f${i}, copy: { dest: /srv/bench/d${i % 5}/f${i}.conf, content: "key${i}=value${i}\\n", owner: bench, group: bench, mode: "0640" } }`).join('\n');
  return `- hosts: all
  gather_facts: false
  become: true
  tasks:
    - { name: group, group: { name: bench, system: true } }
    - { name: user, user: { name: bench, system: true, group: bench, create_home: false, shell: /usr/sbin/nologin, home: /nonexistent } }
${dirs}
${files}
`;
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'rtctl-bench-'));
  const lab = await labUp({ name: LAB, hosts: 20 });
  try {
    // Converge all 20 hosts first (python3 too, for Ansible), so every measured plan is a no-op.
    writeFileSync(join(work, 'p20.yaml'), platformYaml(lab, 20));
    const conv = await execa(RTCTL, ['apply', '-f', 'p20.yaml', '--auto-approve'], { cwd: work, reject: false });
    if (conv.exitCode !== 0) throw new Error(`converging the bench lab failed:\n${conv.stdout}\n${conv.stderr}`);
    if (withAnsible) {
      await execa('sh', ['-c', 'command -v ansible-playbook >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ansible-core >/dev/null)']);
      writeFileSync(join(work, 'site.yml'), playbook());
      writeFileSync(join(work, 'ansible.cfg'), `[defaults]
forks = 25
host_key_checking = True
gathering = explicit
interpreter_python = /usr/bin/python3
stdout_callback = minimal
[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile=${lab.knownHostsPath} -o StrictHostKeyChecking=yes
`);
    }
    const rows: string[] = [];
    const results: Record<number, { rtctl: number; floor: number; ansible?: number }> = {};
    for (const n of SIZES) {
      writeFileSync(join(work, `p${n}.yaml`), platformYaml(lab, n));
      const check = await execa(RTCTL, ['plan', '-f', `p${n}.yaml`, '--detailed-exitcode'], { cwd: work, reject: false });
      if (check.exitCode !== 0) throw new Error(`plan on ${n} hosts is not a no-op (exit ${check.exitCode}):\n${check.stdout}${check.stderr}`);
      const hosts = lab.hosts.slice(0, n);
      const t = { rtctl: [] as number[], floor: [] as number[], ansible: [] as number[] };
      writeFileSync(join(work, `inv${n}`), `${hosts.map((h) => `${h.name} ansible_host=${h.address}`).join('\n')}\n[all:vars]\nansible_user=deploy\nansible_ssh_private_key_file=${lab.keyPath}\n`);
      for (let i = 0; i < runs; i++) {
        t.rtctl.push(await timeIt(() => execa(RTCTL, ['plan', '-f', `p${n}.yaml`], { cwd: work })));
        t.floor.push(await timeIt(() => Promise.all(hosts.map((h) => execa('ssh', ['-i', lab.keyPath, '-o', `UserKnownHostsFile=${lab.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes', `deploy@${h.address}`, 'true'])))));
        if (withAnsible) {
          t.ansible.push(await timeIt(async () => {
            const r = await execa('ansible-playbook', ['-i', `inv${n}`, 'site.yml', '--check'], { cwd: work, reject: false, env: { ANSIBLE_CONFIG: join(work, 'ansible.cfg') } });
            if (r.exitCode !== 0 || /changed=[1-9]/.test(r.stdout)) throw new Error(`ansible check failed or not a no-op:\n${r.stdout}\n${r.stderr}`);
          }));
        }
      }
      results[n] = { rtctl: median(t.rtctl), floor: median(t.floor), ...(withAnsible ? { ansible: median(t.ansible) } : {}) };
    }
    rows.push(`no-op plan, 15 resources per host, median of ${runs} runs (seconds)`);
    rows.push(`hosts  rtctl   ssh-floor  rtctl/floor${withAnsible ? '   ansible --check  ansible/rtctl' : ''}`);
    for (const n of SIZES) {
      const r = results[n]!;
      rows.push(`${String(n).padStart(5)}  ${r.rtctl.toFixed(2).padStart(5)}   ${r.floor.toFixed(2).padStart(9)}  ${(r.rtctl / r.floor).toFixed(2).padStart(11)}${r.ansible !== undefined ? `   ${r.ansible.toFixed(2).padStart(15)}  ${(r.ansible / r.rtctl).toFixed(1).padStart(13)}` : ''}`);
    }
    rows.push(`floor(20)/floor(1) = ${(results[20]!.floor / results[1]!.floor).toFixed(2)}; rtctl(20)/rtctl(1) = ${(results[20]!.rtctl / results[1]!.rtctl).toFixed(2)}`);
    process.stdout.write(`${rows.join('\n')}\n`);
  } finally {
    await labDown({ name: LAB });
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
