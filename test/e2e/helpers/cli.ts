/** The real CLI (bin/rtctl) for e2e suites: run in the suite's work dir, colours off, never throws. */
import { execa } from 'execa';
import { join, resolve } from 'node:path';

export const RTCTL = join(resolve(import.meta.dirname, '../../..'), 'bin/rtctl');

export interface CliResult {
  code: number | undefined;
  out: string;
  err: string;
  /** stdout and stderr, for assertion messages. */
  all: string;
}

/** `rtctl(args)` bound to a work dir read at call time (suites create it in beforeAll). */
export function cliIn(cwd: () => string, timeoutMs = 600_000): (args: string[], opts?: { env?: Record<string, string> }) => Promise<CliResult> {
  return async (args, opts = {}) => {
    const r = await execa(RTCTL, args, { cwd: cwd(), reject: false, env: { NO_COLOR: '1', ...opts.env }, stdin: 'ignore', timeout: timeoutMs });
    return { code: r.exitCode, out: r.stdout, err: r.stderr, all: `${r.stdout}\n${r.stderr}` };
  };
}
