import { execFileSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  appendKnownHost, checkHostKey, fingerprint, hashHostToken, hostToken, keyTypeOf, knownHostLine, parseKnownHosts,
  preferredHostKeyAlgorithms, readKnownHosts,
} from '../../../src/executors/known-hosts.js';

/** An SSH wire-format key blob: string(type) string(data). */
function blob(type: string, data: Buffer): Buffer {
  const t = Buffer.from(type);
  const a = Buffer.alloc(4); a.writeUInt32BE(t.length);
  const b = Buffer.alloc(4); b.writeUInt32BE(data.length);
  return Buffer.concat([a, t, b, data]);
}
const k1 = blob('ssh-ed25519', Buffer.alloc(32, 1));
const k2 = blob('ssh-ed25519', Buffer.alloc(32, 2));
const rsa = blob('ssh-rsa', Buffer.alloc(64, 3));
const ecdsa = blob('ecdsa-sha2-nistp256', Buffer.alloc(72, 4));
const line = (host: string, k: Buffer) => `${host} ${keyTypeOf(k)} ${k.toString('base64')}`;

const tmp = mkdtempSync(join(tmpdir(), 'rtctl-kh-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('known_hosts parsing and the strict decision', () => {
  it('accepts a matching key in plain, [host]:port and comma-list entries; the port must match', () => {
    const e = parseKnownHosts(['# comment', '', line('198.18.1.11', k1), line('[198.18.1.12]:2222', k1), line('a.example,198.18.1.13', ecdsa), line('[198.18.1.14]:2222,198.18.1.14', rsa)].join('\n'));
    expect(e).toHaveLength(4);
    expect(checkHostKey(e, '198.18.1.11', 22, k1)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.11', 2222, k1)).toEqual({ ok: false, reason: 'unknown' });
    expect(checkHostKey(e, '198.18.1.12', 2222, k1)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.12', 22, k1)).toEqual({ ok: false, reason: 'unknown' });
    expect(checkHostKey(e, '198.18.1.13', 22, ecdsa)).toEqual({ ok: true });
    expect(checkHostKey(e, 'A.Example', 22, ecdsa)).toEqual({ ok: true }); // host names are case-insensitive
    expect(checkHostKey(e, '198.18.1.14', 2222, rsa)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.14', 22, rsa)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.99', 22, k1)).toEqual({ ok: false, reason: 'unknown' });
  });

  it('skips comments, blank, malformed and @cert-authority lines; tolerates CRLF and trailing comments; records line numbers', () => {
    const text = [
      '# known hosts',
      'garbage',
      `${line('198.18.1.11', k1)} deploy@laptop\r`,
      `@cert-authority *.example ${k2.toString('base64')}`,
      `@cert-authority *.example ssh-ed25519 ${k2.toString('base64')}`,
      '198.18.1.12 ssh-ed25519 not*base64',
      '|2|abc|def ssh-ed25519 ' + k1.toString('base64'),
      line('198.18.1.13', k2),
    ].join('\n');
    const e = parseKnownHosts(text);
    expect(e.map((x) => [x.patterns, x.line])).toEqual([[['198.18.1.11'], 3], [['198.18.1.13'], 8]]);
    expect(e[0]!.key.equals(k1)).toBe(true);
    expect(e[0]!.keyType).toBe('ssh-ed25519');
  });

  it('reports a CHANGED key with the recorded fingerprint and line — also when only another key type is recorded', () => {
    const e = parseKnownHosts(['# x', line('198.18.1.11', k1), line('198.18.1.12', rsa), line('198.18.1.12', k1)].join('\n'));
    expect(checkHostKey(e, '198.18.1.11', 22, k2)).toEqual({ ok: false, reason: 'changed', expected: fingerprint(k1), line: 2 });
    // A man in the middle offering a new key type must not pass as merely "unknown".
    expect(checkHostKey(e, '198.18.1.11', 22, rsa)).toEqual({ ok: false, reason: 'changed', expected: fingerprint(k1), line: 2 });
    // With several recorded, the one of the offered type is the expected one.
    expect(checkHostKey(e, '198.18.1.12', 22, k2)).toEqual({ ok: false, reason: 'changed', expected: fingerprint(k1), line: 4 });
    expect(checkHostKey(e, '198.18.1.12', 22, rsa)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.12', 22, k1)).toEqual({ ok: true });
  });

  it('matches hashed entries (|1|salt|hmac-sha1 of the host token)', () => {
    const salt = randomBytes(20);
    const hash = createHmac('sha1', salt).update('[198.18.1.12]:2222').digest();
    const e = parseKnownHosts([
      `|1|${salt.toString('base64')}|${hash.toString('base64')} ssh-ed25519 ${k1.toString('base64')}`,
      `${hashHostToken('198.18.1.11', randomBytes(20))} ssh-ed25519 ${k1.toString('base64')}`,
    ].join('\n'));
    expect(e[0]!.hashed).toBeDefined();
    expect(checkHostKey(e, '198.18.1.12', 2222, k1)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.12', 22, k1)).toEqual({ ok: false, reason: 'unknown' });
    expect(checkHostKey(e, '198.18.1.11', 22, k1)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.11', 22, k2)).toMatchObject({ ok: false, reason: 'changed', line: 2 });
    expect(checkHostKey(e, '198.18.1.13', 22, k1)).toEqual({ ok: false, reason: 'unknown' });
  });

  it('agrees with OpenSSH: entries hashed by `ssh-keygen -H` match, ours are found by `ssh-keygen -F`', () => {
    const file = join(tmp, 'kh-openssh');
    writeFileSync(file, [line('[198.18.1.12]:2222', k1), line('198.18.1.11', rsa)].join('\n') + '\n');
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    const hashed = readFileSync(file, 'utf8');
    expect(hashed).not.toContain('198.18');
    const e = parseKnownHosts(hashed);
    expect(e.every((x) => x.hashed)).toBe(true);
    expect(checkHostKey(e, '198.18.1.12', 2222, k1)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.11', 22, rsa)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.11', 2222, rsa)).toEqual({ ok: false, reason: 'unknown' });

    const ours = join(tmp, 'kh-ours');
    writeFileSync(ours, `${hashHostToken('[198.18.1.12]:2222', randomBytes(20))} ssh-ed25519 ${k1.toString('base64')}\n`);
    expect(execFileSync('ssh-keygen', ['-F', '[198.18.1.12]:2222', '-f', ours]).toString()).toContain('ssh-ed25519');
  });

  it('refuses a @revoked key, honours negated patterns and wildcards', () => {
    const e = parseKnownHosts([`@revoked * ssh-ed25519 ${k2.toString('base64')}`, line('198.18.1.*,!198.18.1.99', k1), line('198.18.2.?', k1)].join('\n'));
    expect(checkHostKey(e, '198.18.1.11', 22, k2)).toEqual({ ok: false, reason: 'revoked', line: 1 });
    expect(checkHostKey(e, '10.9.9.9', 22, k2)).toEqual({ ok: false, reason: 'revoked', line: 1 });
    expect(checkHostKey(e, '198.18.1.50', 22, k1)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.99', 22, k1)).toEqual({ ok: false, reason: 'unknown' });
    expect(checkHostKey(e, '198.18.2.5', 22, k1)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.2.55', 22, k1)).toEqual({ ok: false, reason: 'unknown' });
    expect(checkHostKey(e, '198x18.1.50', 22, k1)).toEqual({ ok: false, reason: 'unknown' }); // `.` is literal
  });

  it('formats fingerprints like OpenSSH (SHA256, base64 without padding)', () => {
    expect(fingerprint(k1)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
    const pub = join(tmp, 'fp.pub');
    writeFileSync(pub, `ssh-ed25519 ${k1.toString('base64')} x\n`);
    expect(execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', pub]).toString()).toContain(fingerprint(k1));
  });

  it('names host tokens like OpenSSH and orders host key algorithms by what is recorded', () => {
    expect(hostToken('198.18.1.11', 22)).toBe('198.18.1.11');
    expect(hostToken('Web.Example', 2222)).toBe('[web.example]:2222');
    expect(keyTypeOf(Buffer.alloc(2))).toBe('unknown');
    const e = parseKnownHosts([line('198.18.1.11', rsa), line('198.18.1.12', ecdsa)].join('\n'));
    expect(preferredHostKeyAlgorithms(e, '198.18.1.11', 22).slice(0, 3)).toEqual(['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    expect(preferredHostKeyAlgorithms(e, '198.18.1.12', 22)[0]).toBe('ecdsa-sha2-nistp256');
    const unknown = preferredHostKeyAlgorithms(e, '198.18.1.13', 22);
    expect(unknown[0]).toBe('ssh-ed25519');
    expect(new Set(unknown).size).toBe(unknown.length);
  });

  it('reads a missing file as empty and appends lines (creating the file 0600, mending a missing final newline)', () => {
    const file = join(tmp, 'sub', 'known_hosts');
    expect(readKnownHosts(file)).toEqual([]);
    appendKnownHost(file, '198.18.1.11', 22, k1);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    writeFileSync(file, readFileSync(file, 'utf8').trimEnd()); // no final newline
    appendKnownHost(file, '198.18.1.12', 2222, rsa);
    expect(readFileSync(file, 'utf8')).toBe(`${knownHostLine('198.18.1.11', 22, k1)}\n[198.18.1.12]:2222 ssh-rsa ${rsa.toString('base64')}\n`);
    const e = readKnownHosts(file);
    expect(checkHostKey(e, '198.18.1.11', 22, k1)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.12', 2222, rsa)).toEqual({ ok: true });
  });
});
