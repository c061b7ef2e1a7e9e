import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import * as x509 from '@peculiar/x509';
import { caSecrets, leafSecrets, splitPem } from '../../../recipes/ca.js';
import { caSecrets as haproxyCa, leafSecret as haproxyLeaf } from '../../../recipes/haproxy-certs.js';
import type { GeneratedSecret } from '../../../recipes/types.js';

const now = new Date('2026-01-01T00:00:00Z');

/** Generates secrets the way apply does: on first read, each from the ones it reads. */
function store(secrets: GeneratedSecret[]) {
  const got = new Map<string, string>();
  const read = async (path: string): Promise<string> => {
    if (!got.has(path)) got.set(path, await secrets.find((s) => s.path === path)!.generate(read, now));
    return got.get(path)!;
  };
  return read;
}

const certs = (pem: string) => [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new x509.X509Certificate(m[0]));
const names = (c: x509.X509Certificate) => (c.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? []).map((n) => `${n.type}:${n.value}`);
const usages = (c: x509.X509Certificate) => c.getExtension(x509.ExtendedKeyUsageExtension)?.usages;

describe('internal CA (recipes/ca.ts): one implementation for PostgreSQL, Consul and HAProxy', () => {
  it('a CA and a leaf it signed: chain verifies, names and usages as asked, key matches the certificate', async () => {
    const read = store([...caSecrets('.s/pg', 'rtctl postgres CA'), ...leafSecrets('.s/pg', { name: 'server-h1', commonName: 'h1', dns: ['h1', 'localhost'], ips: ['198.18.0.11'] })]);
    const ca = new x509.X509Certificate(await read('.s/pg/ca.crt'));
    expect(ca.subject).toBe('CN=rtctl postgres CA');
    expect(await ca.verify({ date: now })).toBe(true); // self-signed
    expect(ca.getExtension(x509.BasicConstraintsExtension)?.ca).toBe(true);
    const combined = await read('.s/pg/server-h1.pem');
    expect(combined).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n-----BEGIN CERTIFICATE-----/);
    const leaf = new x509.X509Certificate(await read('.s/pg/server-h1.crt'));
    expect(await leaf.verify({ publicKey: ca.publicKey, date: now })).toBe(true);
    expect(leaf.issuer).toBe(ca.subject);
    expect(names(leaf)).toEqual(['dns:h1', 'dns:localhost', 'ip:198.18.0.11']);
    expect(usages(leaf)).toEqual([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]);
    expect(Math.round((leaf.notAfter.getTime() - now.getTime()) / 86_400_000)).toBe(825);
    // The .key file signs what the certificate's public key verifies.
    const key = await globalThis.crypto.subtle.importKey('pkcs8', x509.PemConverter.decode(await read('.s/pg/server-h1.key'))[0]!, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    const data = new TextEncoder().encode('rtctl');
    const sig = await globalThis.crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, key, data);
    expect(await globalThis.crypto.subtle.verify({ name: 'ECDSA', hash: 'SHA-256' }, await leaf.publicKey.export(), sig, data)).toBe(true);
    expect(splitPem(combined).cert).toBe(await read('.s/pg/server-h1.crt'));
    // Another CA's certificate does not verify it.
    const other = new x509.X509Certificate(await store(caSecrets('.s/x', 'other'))('.s/x/ca.crt'));
    expect(await leaf.verify({ publicKey: other.publicKey, date: now })).toBe(false);
  });

  it('HAProxy keeps its file layout (key and CA apart; bundle = leaf, CA, key) and gets server-only leaves from the same code', async () => {
    const spec = { path: '.s/haproxy/https.pem', commonName: 'api.lab', dnsNames: ['api.lab'], ips: ['198.18.1.100'], validityDays: 90, renewBeforeDays: 30 };
    const read = store([...haproxyCa(), haproxyLeaf(spec)]);
    expect(await read('.rtctl/secrets/haproxy/ca.key')).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+-----END PRIVATE KEY-----\n$/);
    const ca = new x509.X509Certificate(await read('.rtctl/secrets/haproxy/ca.crt'));
    expect(ca.subject).toBe('CN=rtctl front door CA');
    expect(await ca.verify({ date: now })).toBe(true);
    const bundle = await read(spec.path);
    expect(bundle).toMatch(/^-----BEGIN CERTIFICATE-----[\s\S]+-----BEGIN CERTIFICATE-----[\s\S]+-----BEGIN PRIVATE KEY-----[\s\S]+-----END PRIVATE KEY-----\n$/);
    const [leaf, chain] = certs(bundle);
    expect(chain!.toString('pem')).toBe(ca.toString('pem'));
    expect(await leaf!.verify({ publicKey: ca.publicKey, date: now })).toBe(true);
    expect(names(leaf!)).toEqual(['dns:api.lab', 'ip:198.18.1.100']);
    expect(usages(leaf!)).toEqual([x509.ExtendedKeyUsage.serverAuth]);
  });
});
