/**
 * Lab hosts for e2e suites: `withLab` brings a named lab up (replacing leftovers of an earlier killed run),
 * `teardownLab` removes it; call it from afterAll so a failed suite leaves nothing behind.
 */
import { execa } from 'execa';
import { checkPrerequisites, labDown, labUp, sshArgs } from '../../../src/lab/index.js';
import type { LabInfo } from '../../../src/lab/index.js';

export type { LabInfo } from '../../../src/lab/index.js';

/** Lab progress goes to stderr only with RTCTL_E2E_VERBOSE=1, to keep test output readable. */
function log(line: string): void {
  if (process.env.RTCTL_E2E_VERBOSE === '1') process.stderr.write(`[lab] ${line}\n`);
}

export async function withLab(name: string, hosts: number): Promise<LabInfo> {
  const missing = await checkPrerequisites();
  if (missing.length > 0) throw new Error(`e2e tests need a lab on this machine:\n  - ${missing.join('\n  - ')}`);
  return labUp({ name, hosts, log });
}

export async function teardownLab(name: string): Promise<void> {
  await labDown({ name, log });
}

export interface SshResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

/** Runs a remote shell command on a lab host as deploy with OpenSSH (strict host-key checking); never throws. */
export async function ssh(info: LabInfo, host: string, command: string, opts: { timeoutMs?: number } = {}): Promise<SshResult> {
  const r = await execa('ssh', [...sshArgs(info, host), command], {
    reject: false,
    stdin: 'ignore',
    timeout: opts.timeoutMs ?? 120_000,
  });
  return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? -1 };
}
