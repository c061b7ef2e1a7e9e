/**
 * The built CLI (bin/rtctl → dist/) end to end against a real OpenSSH sshd on loopback: catches what the
 * vitest transform hides (ESM/CommonJS interop of the real Node loader) and checks exit codes and messages.
 * scripts/test builds dist/ before the unit tier runs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execa } from 'execa';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startSshd, type Sshd } from '../../helpers/sshd.js';

const RTCTL = resolve(import.meta.dirname, '../../../bin/rtctl');
let d: Sshd;
let work: string;

const rtctl = async (args: string[]) => {
  const r = await execa(RTCTL, args, { cwd: work, reject: false, env: { NO_COLOR: '1' }, stdin: 'ignore' });
  return { code: r.exitCode, out: r.stdout, err: r.stderr };
};

beforeAll(async () => {
  d = await startSshd();
  work = mkdtempSync(join(tmpdir(), 'rtctl-cli-'));
  writeFileSync(join(work, 'platform.yaml'), `version: 1
hosts:
  - { name: lo, address: 127.0.0.1, port: ${d.port}, user: root, key: ${d.clientKeyPath}, known_hosts: ${d.knownHostsFile} }
directories:
  - { path: ${work}/out }
files:
  - { path: ${work}/out/a.conf, content: "a=1\\n", mode: "0640" }
`);
});
afterAll(async () => {
  await d?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('bin/rtctl', () => {
  it('answers --version', async () => {
    const r = await rtctl(['--version']);
    expect(r).toMatchObject({ code: 0, out: JSON.parse(readFileSync(resolve(import.meta.dirname, '../../../package.json'), 'utf8')).version });
  });

  it('plans, applies, then plans no changes, with Terraform-style exit codes', async () => {
    let r = await rtctl(['plan', '--detailed-exitcode']);
    expect(r.code, r.err).toBe(2);
    expect(r.out).toContain('Plan: 2 to create, 0 to change, 0 to destroy, 0 to restart, on 1 of 1 hosts.');
    r = await rtctl(['apply', '--auto-approve']);
    expect(r.code, r.err).toBe(0);
    expect(readFileSync(join(work, 'out/a.conf'), 'utf8')).toBe('a=1\n');
    expect(existsSync(join(d.dir, 'rtctl-state/manifest'))).toBe(true);
    r = await rtctl(['plan', '--detailed-exitcode']);
    expect(r.code).toBe(0);
    expect(r.out).toBe('No changes. 1 host is in sync.');
  });

  it('refuses to apply without a terminal unless --auto-approve is given', async () => {
    writeFileSync(join(work, 'out/a.conf'), 'drift\n');
    const r = await rtctl(['apply']);
    expect(r.code).toBe(1);
    expect(r.err).toBe('error: refusing to apply without confirmation: no terminal to ask in; pass --auto-approve');
    expect(readFileSync(join(work, 'out/a.conf'), 'utf8')).toBe('drift\n');
  });

  it('reports a missing platform file and an unknown command clearly', async () => {
    expect(await rtctl(['plan', '-f', 'nope.yaml'])).toMatchObject({ code: 1, err: 'error: nope.yaml: cannot read platform file (no such file)' });
    const r = await rtctl(['frobnicate']);
    expect(r.code).toBe(1);
    expect(r.err).toContain("unknown command 'frobnicate'");
  });
});
