/**
 * tinyproxy on the lab bridge: the hosts' only way out, and only to Debian's package mirrors (apt over http).
 * Runs in the foreground (-d) as a detached process so we own its pid; its log goes to stderr, which we send
 * to the lab dir (it drops to nobody and could not create a log file there itself).
 */
import { writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { LabError } from './errors.js';
import { LAB_SUPERNET, PROXY_PORT, labFiles } from './paths.js';
import { readPidFile, spawnDetached, terminate } from './proc.js';

/** Hosts may fetch from these domains only (extended regular expressions, one per line). */
const ALLOWED_DOMAINS = ['^deb\\.debian\\.org$', '^security\\.debian\\.org$'];

export async function startProxy(lab: string, gateway: string): Promise<number> {
  const f = labFiles(lab);
  await writeFile(f.proxyFilter, `${ALLOWED_DOMAINS.join('\n')}\n`);
  await writeFile(
    f.proxyConf,
    [
      `Port ${PROXY_PORT}`,
      `Listen ${gateway}`,
      `Allow ${LAB_SUPERNET}`,
      'User nobody',
      'Group nogroup',
      'Timeout 600',
      'MaxClients 200',
      'LogLevel Notice',
      'DisableViaHeader Yes',
      `Filter "${f.proxyFilter}"`,
      'FilterType ere',
      'FilterDefaultDeny Yes',
      '',
    ].join('\n'),
  );
  const pid = spawnDetached('tinyproxy', ['-d', '-c', f.proxyConf], f.proxyLog);
  await writeFile(f.proxyPid, `${pid}\n`);
  await waitListening(gateway, PROXY_PORT, 10_000, f.proxyLog);
  return pid;
}

export async function stopProxy(lab: string, recordedPid?: number): Promise<void> {
  const f = labFiles(lab);
  for (const pid of new Set([recordedPid, readPidFile(f.proxyPid)])) {
    if (pid) await terminate(pid, 'tinyproxy', f.proxyConf, 5_000);
  }
}

export function tcpOpen(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host, port, timeout: timeoutMs });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('timeout', () => done(false));
    sock.once('error', () => done(false));
  });
}

async function waitListening(host: string, port: number, ms: number, logPath: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await tcpOpen(host, port, 1000)) return;
    await sleep(100);
  }
  throw new LabError(`tinyproxy did not listen on ${host}:${port} within ${ms / 1000} s (see ${logPath})`);
}
