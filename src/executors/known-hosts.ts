/**
 * OpenSSH known_hosts: parsing (plain, `[host]:port`, comma lists with `*`/`?`/`!` patterns, hashed
 * `|1|salt|hmac-sha1` names, comments, `@revoked`) and the strict host-key decision. Pure except
 * `readKnownHosts` / `appendKnownHost`.
 */
import { createHash, createHmac } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface KnownHostEntry {
  /** 1-based line in the file (for "remove line N" hints). */
  line: number;
  /** Host patterns (empty for hashed entries). */
  patterns: string[];
  hashed?: { salt: Buffer; hash: Buffer };
  keyType: string;
  /** Raw key blob (base64-decoded), as ssh2's hostVerifier sees it. */
  key: Buffer;
  revoked: boolean;
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const out: KnownHostEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line || line.startsWith('#')) continue;
    const parts = line.split(/\s+/);
    let revoked = false;
    if (parts[0]?.startsWith('@')) {
      const marker = parts.shift();
      if (marker === '@revoked') revoked = true;
      else continue; // @cert-authority (certificates are not supported) and unknown markers: ignore the line
    }
    const [hosts, keyType, b64] = parts;
    if (!hosts || !keyType || !b64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) continue;
    const entry: KnownHostEntry = { line: i + 1, patterns: [], keyType, key: Buffer.from(b64, 'base64'), revoked };
    if (hosts.startsWith('|')) {
      const [, magic, salt, hash] = hosts.split('|');
      if (magic !== '1' || !salt || !hash) continue; // unknown hash scheme
      entry.hashed = { salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
    } else {
      entry.patterns = hosts.split(',').filter(Boolean);
    }
    out.push(entry);
  }
  return out;
}

/** The name OpenSSH records for a host: `addr` on port 22, `[addr]:port` otherwise (lower-cased). */
export function hostToken(address: string, port: number): string {
  const a = address.toLowerCase();
  return port === 22 ? a : `[${a}]:${port}`;
}

/** OpenSSH's `HashKnownHosts` form of a host token, with the given salt (20 random bytes in OpenSSH). */
export function hashHostToken(token: string, salt: Buffer): string {
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(token).digest('base64')}`;
}

function globMatch(pattern: string, s: string): boolean {
  const re = pattern
    .toLowerCase()
    .split('')
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${re}$`).test(s);
}

export function entryMatches(e: KnownHostEntry, token: string): boolean {
  if (e.hashed) return createHmac('sha1', e.hashed.salt).update(token).digest().equals(e.hashed.hash);
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

/** Key type from an SSH wire-format blob (its first string), e.g. `ssh-ed25519`. */
export function keyTypeOf(key: Buffer): string {
  if (key.length < 4) return 'unknown';
  const n = key.readUInt32BE(0);
  if (n > key.length - 4) return 'unknown';
  return key.subarray(4, 4 + n).toString('latin1');
}

export type Verdict =
  | { ok: true }
  | { ok: false; reason: 'unknown' }
  | { ok: false; reason: 'revoked'; line: number }
  /** `expected`: fingerprint of the recorded key (same type as the offered one when there is one). */
  | { ok: false; reason: 'changed'; expected: string; line: number };

/**
 * The strict decision. The host is "known" when any non-revoked entry matches its token; then the offered
 * key must be one of the recorded keys, or it is a CHANGED key — even when only keys of another type are
 * recorded (otherwise a man in the middle could offer a new key type and pass as "unknown"; the algorithm
 * order from `preferredHostKeyAlgorithms` makes an honest server offer a recorded type).
 */
export function checkHostKey(entries: readonly KnownHostEntry[], address: string, port: number, key: Buffer): Verdict {
  const token = hostToken(address, port);
  const matching = entries.filter((e) => entryMatches(e, token));
  const revoked = matching.find((e) => e.revoked && e.key.equals(key));
  if (revoked) return { ok: false, reason: 'revoked', line: revoked.line };
  const live = matching.filter((e) => !e.revoked);
  if (live.some((e) => e.key.equals(key))) return { ok: true };
  const recorded = live.find((e) => e.keyType === keyTypeOf(key)) ?? live[0];
  if (recorded) return { ok: false, reason: 'changed', expected: fingerprint(recorded.key), line: recorded.line };
  return { ok: false, reason: 'unknown' };
}

const ALGOS_OF_TYPE: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};
const DEFAULT_HOST_KEY_ALGOS = Object.values(ALGOS_OF_TYPE).flat();

/**
 * Host key algorithms for the handshake, those of the key types recorded for this host first (as OpenSSH
 * does), so a server with several host keys offers the one we know.
 */
export function preferredHostKeyAlgorithms(entries: readonly KnownHostEntry[], address: string, port: number): string[] {
  const token = hostToken(address, port);
  const first = entries.filter((e) => !e.revoked && entryMatches(e, token)).flatMap((e) => ALGOS_OF_TYPE[e.keyType] ?? []);
  return [...new Set([...first, ...DEFAULT_HOST_KEY_ALGOS])];
}

/** Entries of a known_hosts file; a missing file is empty (other read errors throw). */
export function readKnownHosts(file: string): KnownHostEntry[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return parseKnownHosts(text);
}

/** The line recorded for a host: `<host-or-[host]:port> <type> <base64>`. */
export function knownHostLine(address: string, port: number, key: Buffer): string {
  return `${hostToken(address, port)} ${keyTypeOf(key)} ${key.toString('base64')}`;
}

/** Append the host's key (creating the file 0600, its directory 0700, when missing). */
export function appendKnownHost(file: string, address: string, port: number, key: Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const sep = text === '' || text.endsWith('\n') ? '' : '\n';
  appendFileSync(file, `${sep}${knownHostLine(address, port, key)}\n`, { mode: 0o600 });
}
