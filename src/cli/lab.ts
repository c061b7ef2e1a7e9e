import { spawnSync } from 'node:child_process';
import { ConfigError, RtctlError } from '../errors.js';

async function lab() {
  return import('../lab/index.js');
}

function ts(s: string) {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
}

async function requirePrereqs(): Promise<void> {
  const missing = await (await lab()).checkPrerequisites();
  if (missing.length) throw new RtctlError(`the lab cannot start:\n  ${missing.join('\n  ')}`);
}

export async function labUpCommand(opts: { hosts: number; name: string }): Promise<void> {
  if (!Number.isInteger(opts.hosts) || opts.hosts < 1 || opts.hosts > 40) throw new ConfigError('--hosts must be 1 to 40');
  await requirePrereqs();
  const t0 = Date.now();
  const info = await (await lab()).labUp({ name: opts.name, hosts: opts.hosts, log: ts });
  process.stdout.write(`lab ${info.name}: ${info.hosts.length} hosts up in ${((Date.now() - t0) / 1000).toFixed(1)} s on ${info.subnet}\n`);
  for (const h of info.hosts) process.stdout.write(`  ${h.name}  ${h.address}\n`);
  process.stdout.write(`  user ${info.user}, key ${info.keyPath}, known_hosts ${info.knownHostsPath}\n`);
}

export async function labDownCommand(opts: { name: string }): Promise<void> {
  await requirePrereqs();
  await (await lab()).labDown({ name: opts.name, log: ts });
  process.stdout.write(`lab ${opts.name}: down\n`);
}

export async function labStatusCommand(opts: { name: string }): Promise<void> {
  const { info, hosts } = await (await lab()).labStatus({ name: opts.name });
  if (!info) {
    process.stdout.write(`lab ${opts.name}: not up\n`);
    return;
  }
  process.stdout.write(`lab ${info.name} on ${info.subnet}\n`);
  for (const h of hosts) process.stdout.write(`  ${h.name.padEnd(5)} ${h.address.padEnd(15)} ${h.state}\n`);
}

export async function labSshCommand(host: string, command: string[], opts: { name: string }): Promise<void> {
  const l = await lab();
  const info = l.labInfo(opts.name);
  if (!info) throw new RtctlError(`lab ${opts.name} is not up (run: rtctl lab up --name ${opts.name})`);
  if (!info.hosts.some((h) => h.name === host)) throw new ConfigError(`lab ${opts.name} has no host "${host}" (hosts: ${info.hosts.map((h) => h.name).join(', ')})`);
  const args = [...l.sshArgs(info, host), ...(command.length ? ['--', ...command] : [])];
  const r = spawnSync('ssh', command.length ? args : ['-t', ...args], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
}
