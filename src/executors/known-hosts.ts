/**
 * OpenSSH known_hosts: parsing (plain, `[host]:port`, comma lists, hashed `|1|salt|hash`, @revoked) and the
 * strict host-key decision. Pure except `appendKnownHost`.
 */
import { createHash, createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface KnownHostEntry {
  patterns: string[];
  hashed?: { salt: Buffer; hash: Buffer };
  keyType: string;
  /** Raw key blob (base64-decoded). */
  key: Buffer;
  revoked: boolean;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const parts = line.split(/\s+/);
    let revoked = false;
    if (parts[0]?.startsWith('@')) {
      const marker = parts.shift();
      if (marker === '@revoked') revoked = true;
      else if (marker === '@cert-authority') continue; // certificates are not supported: ignore CA lines
    }
    const [hosts, keyType, b64] = parts;
    if (!hosts || !keyType || !b64) continue;
    const entry: KnownHostEntry = { patterns: [], keyType, key: Buffer.from(b64, 'base64'), revoked };
    if (hosts.startsWith('|1|')) {
      const [, , salt, hash] = hosts.split('|');
      entry.hashed = { salt: Buffer.from(salt ?? '', 'base64'), hash: Buffer.from(hash ?? '', 'base64') };
    } else {
      entry.patterns = hosts.split(',');
    }
    out.push(entry);
  }
  return out;
}

/** The name OpenSSH records for a host: `addr` on port 22, `[addr]:port` otherwise. */
export function hostToken(address: string, port: number): string {
  return port === 22 ? address : `[${address}]:${port}`;
}

function globMatch(pattern: string, s: string): boolean {
  const re = new RegExp(`^${pattern.split('').map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('')}$`);
  return re.test(s);
}

export function entryMatches(e: KnownHostEntry, token: string): boolean {
  if (e.hashed) {
    return createHmac('sha1', e.hashed.salt).update(token).digest().equals(e.hashed.hash);
  }
  let hit = false;
  for (const p of e.patterns) {
    if (p.startsWith('!')) {
      if (globMatch(p.slice(1), token)) return false;
    } else if (globMatch(p, token)) hit = true;
  }
  return hit;
}

/** OpenSSH's `SHA256:…` fingerprint (base64, no padding). */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/** Key type from an SSH wire-format blob (its first string). */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const n = key.readUInt32BE(0);
  return key.subarray(4, 4 + n).toString('latin1');
}

export type Verdict = { ok: true } | { ok: false; reason: 'unknown' | 'changed' | 'revoked'; expected?: string };

export function checkHostKey(entries: readonly KnownHostEntry[], address: string, port: number, key: Buffer): Verdict {
  const token = hostToken(address, port);
  const matching = entries.filter((e) => entryMatches(e, token));
  if (matching.some((e) => e.revoked && e.key.equals(key))) return { ok: false, reason: 'revoked' };
  const live = matching.filter((e) => !e.revoked);
  if (live.some((e) => e.key.equals(key))) return { ok: true };
  // Only a key of the same type counts as "changed"; another type is merely not known (as OpenSSH does).
  const sameType = live.find((e) => e.keyType === keyTypeOf(key));
  if (sameType) return { ok: false, reason: 'changed', expected: fingerprint(sameType.key) };
  return { ok: false, reason: 'unknown' };
}

export function readKnownHosts(file: string): KnownHostEntry[] {
  try {
    return parseKnownHosts(readFileSync(file, 'utf8'));
  } catch {
    return [];
  }
}

export function appendKnownHost(file: string, address: string, port: number, key: Buffer): void {
  const line = `${hostToken(address, port)} ${keyTypeOf(key)} ${key.toString('base64')}\n`;
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, line, { mode: 0o600 });
  } else {
    const text = readFileSync(file, 'utf8');
    appendFileSync(file, text.endsWith('\n') || text === '' ? line : `\n${line}`);
  }
}
