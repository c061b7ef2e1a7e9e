/** Runs commands on this machine (for `rtctl lab` internals and I/O tests of resource steps in temp dirs). */
import { execa } from 'execa';
import { copyFile, chmod, readFile } from 'node:fs/promises';
import { shArgv } from '../util/shell.js';
import type { ExecOptions, ExecResult, Executor } from './types.js';

export class LocalExecutor implements Executor {
  readonly host: string;
  private readonly env: Record<string, string>;
  /** `env` is added to every command's environment (tests use it to relocate rtctl's host-side state). */
  constructor(host = 'local', env: Record<string, string> = {}) {
    this.host = host;
    this.env = env;
  }
  async connect(): Promise<void> {}
  async runScript(script: string, opts: Omit<ExecOptions, 'stdin'> = {}): Promise<ExecResult> {
    return this.exec(['sh', '-s'], { ...opts, stdin: script });
  }
  async run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.exec(['sh', '-c', shArgv(argv)], opts);
  }
  private async exec(argv: string[], opts: ExecOptions): Promise<ExecResult> {
    const r = await execa(argv[0]!, argv.slice(1), {
      input: opts.stdin ?? '',
      reject: false,
      timeout: opts.timeoutMs ?? 600_000,
      stripFinalNewline: false,
      env: this.env,
    });
    return { code: r.exitCode ?? null, stdout: String(r.stdout), stderr: String(r.stderr) };
  }
  async putFile(localPath: string, remotePath: string, mode = 0o600): Promise<void> {
    await copyFile(localPath, remotePath);
    await chmod(remotePath, mode);
  }
  async getFile(remotePath: string): Promise<Buffer> {
    return readFile(remotePath);
  }
  async close(): Promise<void> {}
}
