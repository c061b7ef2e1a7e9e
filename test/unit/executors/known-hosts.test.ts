import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkHostKey, fingerprint, hostToken, parseKnownHosts } from '../../../src/executors/known-hosts.js';

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
const line = (host: string, k: Buffer) => `${host} ${k === rsa ? 'ssh-rsa' : 'ssh-ed25519'} ${k.toString('base64')}`;

describe('known_hosts', () => {
  it('accepts a matching key, in plain, [host]:port and comma-list entries', () => {
    const e = parseKnownHosts([`# comment`, line('198.18.1.11', k1), line('[198.18.1.12]:2222', k1), line('a.example,198.18.1.13', k1)].join('\n'));
    expect(checkHostKey(e, '198.18.1.11', 22, k1)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.12', 2222, k1)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.12', 22, k1)).toEqual({ ok: false, reason: 'unknown' });
    expect(checkHostKey(e, '198.18.1.13', 22, k1)).toEqual({ ok: true });
  });

  it('reports a changed key of the same type with the expected fingerprint; another type is only unknown', () => {
    const e = parseKnownHosts(line('198.18.1.11', k1));
    expect(checkHostKey(e, '198.18.1.11', 22, k2)).toEqual({ ok: false, reason: 'changed', expected: fingerprint(k1) });
    expect(checkHostKey(e, '198.18.1.11', 22, rsa)).toEqual({ ok: false, reason: 'unknown' });
  });

  it('matches hashed entries (|1|salt|hmac-sha1)', () => {
    const salt = randomBytes(20);
    const hash = createHmac('sha1', salt).update(hostToken('198.18.1.11', 22)).digest();
    const e = parseKnownHosts(`|1|${salt.toString('base64')}|${hash.toString('base64')} ssh-ed25519 ${k1.toString('base64')}`);
    expect(checkHostKey(e, '198.18.1.11', 22, k1)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.12', 22, k1)).toEqual({ ok: false, reason: 'unknown' });
  });

  it('refuses a @revoked key, honours negated patterns and wildcards', () => {
    const e = parseKnownHosts([`@revoked * ssh-ed25519 ${k2.toString('base64')}`, line('198.18.1.*,!198.18.1.99', k1)].join('\n'));
    expect(checkHostKey(e, '198.18.1.11', 22, k2)).toEqual({ ok: false, reason: 'revoked' });
    expect(checkHostKey(e, '198.18.1.50', 22, k1)).toEqual({ ok: true });
    expect(checkHostKey(e, '198.18.1.99', 22, k1)).toEqual({ ok: false, reason: 'unknown' });
  });

  it('formats fingerprints like OpenSSH (SHA256, base64 without padding)', () => {
    expect(fingerprint(k1)).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});
