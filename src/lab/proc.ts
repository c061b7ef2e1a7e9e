/**
 * Running commands and handling the daemons a lab owns. Processes are only ever signalled by a pid we
 * recorded (or found by an exact lab path in its cmdline), and only after re-reading its cmdline,
 * so a recycled pid is never killed by mistake.
 */
import { readFileSync, readdirSync, openSync, closeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawn } from 'node:child_process';
import { execa } from 'execa';
import { LabError } from './errors.js';

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Runs argv (never through a shell); throws a LabError carrying the command's stderr unless `allowFail`. */
export async function run(
  file: string,
  args: readonly string[],
  opts: { allowFail?: boolean; timeoutMs?: number } = {},
): Promise<RunResult> {
  const r = await execa(file, args, { reject: false, timeout: opts.timeoutMs, stdin: 'ignore' });
  const result = { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? -1 };
  if (result.exitCode !== 0 && !opts.allowFail) {
    const why = r.timedOut
      ? `timed out after ${opts.timeoutMs} ms`
      : r.stderr.trim() || r.shortMessage || `exit code ${result.exitCode}`;
    throw new LabError(`${[file, ...args].join(' ')}: ${why}`);
  }
  return result;
}

/**
 * Starts a daemon that must outlive this Node process: its own process group, no stdin, stdout and stderr
 * written straight to `logPath` through an inherited fd. This one uses node:child_process rather than execa:
 * execa relays output through the parent, which a daemon that outlives `rtctl lab up` must not depend on.
 */
export function spawnDetached(file: string, args: readonly string[], logPath: string): number {
  const fd = openSync(logPath, 'a');
  try {
    const child = spawn(file, args, { detached: true, stdio: ['ignore', fd, fd] });
    if (child.pid === undefined) throw new LabError(`could not start ${file}`);
    // A daemon's exit is noticed through its pid; a spawn error must not crash the caller.
    child.on('error', () => undefined);
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

export function readCmdline(pid: number): string[] | null {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return raw.split('\0').filter((a) => a !== '');
  } catch {
    return null;
  }
}

/** Alive and not a zombie (a zombie already exited; it only waits to be reaped). */
export function isAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * A recorded pid still belongs to our daemon iff its program and one marker argument (a lab path) match.
 * `program` null accepts any program (used for a killed build's debootstrap, which runs as `sh debootstrap`).
 */
export function pidMatches(pid: number, program: string | null, marker: string): boolean {
  const argv = readCmdline(pid);
  if (!argv || argv.length === 0) return false;
  const prog = argv[0] ?? '';
  const programOk = program === null || prog === program || prog.endsWith(`/${program}`);
  return programOk && argv.some((a) => a.includes(marker));
}

/** All live processes running `program` with an argument that mentions `marker` (an exact lab path). */
export function findProcesses(program: string | null, marker: string): number[] {
  const pids = readdirSync('/proc').filter((e) => /^[0-9]+$/.test(e)).map(Number);
  return pids.filter((pid) => pid !== process.pid && pidMatches(pid, program, marker) && isAlive(pid));
}

/**
 * SIGTERM, wait up to `graceMs`, then SIGKILL and wait for it to be gone. Does nothing when the pid no
 * longer runs `program` with `marker` (exited, or recycled by something else).
 */
export async function terminate(pid: number, program: string | null, marker: string, graceMs: number): Promise<void> {
  if (!pidMatches(pid, program, marker) || !isAlive(pid)) return;
  signal(pid, 'SIGTERM');
  if (await waitGone(pid, graceMs)) return;
  if (!pidMatches(pid, program, marker)) return;
  signal(pid, 'SIGKILL');
  if (!(await waitGone(pid, 10_000))) throw new LabError(`${program ?? 'process'} (pid ${pid}) did not exit after SIGKILL`);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await sleep(100);
  }
  return !isAlive(pid);
}

export function readPidFile(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 1 ? pid : null;
  } catch {
    return null;
  }
}
