/**
 * An internal certificate authority made on the operator's side, as generated secrets (recipes/types.ts):
 * a CA and leaf certificates signed by it, ECDSA P-256, written once under `.rtctl/secrets/<dir>/` and reused.
 * Written for PostgreSQL; nothing in it is PostgreSQL-specific, so other recipes (Consul's TLS) can use it.
 *
 * Files per CA dir: `ca.pem` (private key + certificate: never sent to a host), `ca.crt` (the certificate);
 * per leaf `<name>`: `<name>.pem` (key + certificate), `<name>.crt`, `<name>.key`.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { GeneratedSecret } from './types.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;
/** Leaf certificates are made again when fewer days than this remain. */
const RENEW_DAYS = 30;

x509.cryptoProvider.set(globalThis.crypto);

export interface LeafSpec {
  /** File stem under the CA dir, e.g. `server-h1`. */
  name: string;
  commonName: string;
  dns: string[];
  ips: string[];
  days?: number;
}

function pemKey(der: ArrayBuffer): string {
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

function serial(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f; // positive
  return Buffer.from(b).toString('hex');
}

/** The certificate and the key of a combined PEM (`<key><cert>`). */
export function splitPem(pem: string): { cert: string; key: string } {
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(pem)?.[0] ?? '';
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/.exec(pem)?.[0] ?? '';
  return { cert: cert.endsWith('\n') ? cert : `${cert}\n`, key: key.endsWith('\n') ? key : `${key}\n` };
}

function expiresWithin(pem: string, days: number, now: Date): boolean {
  try {
    const cert = new x509.X509Certificate(splitPem(pem).cert);
    return cert.notAfter.getTime() - now.getTime() < days * DAY;
  } catch {
    return true;
  }
}

async function importKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(splitPem(pem).key)[0]!;
  return globalThis.crypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']);
}

/** Secrets for a CA under `dir` (e.g. `.rtctl/secrets/postgres`): `ca.pem` and `ca.crt`. */
export function caSecrets(dir: string, commonName: string): GeneratedSecret[] {
  const combined = `${dir}/ca.pem`;
  return [
    {
      path: combined,
      async generate(_read, now) {
        const keys = (await globalThis.crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
        const cert = await x509.X509CertificateGenerator.createSelfSigned({
          serialNumber: serial(),
          name: `CN=${commonName}`,
          notBefore: new Date(now.getTime() - 3_600_000),
          notAfter: new Date(now.getTime() + 3650 * DAY),
          keys,
          signingAlgorithm: ALG,
          extensions: [
            new x509.BasicConstraintsExtension(true, 0, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
            await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
          ],
        });
        return `${pemKey(await globalThis.crypto.subtle.exportKey('pkcs8', keys.privateKey))}\n${cert.toString('pem')}\n`;
      },
    },
    { path: `${dir}/ca.crt`, generate: async (read) => splitPem(await read(combined)).cert, derived: true },
  ];
}

/** Secrets for one leaf certificate signed by the CA in `dir`: `<name>.pem`, `<name>.crt`, `<name>.key`. */
export function leafSecrets(dir: string, spec: LeafSpec): GeneratedSecret[] {
  const combined = `${dir}/${spec.name}.pem`;
  return [
    {
      path: combined,
      async generate(read, now) {
        const ca = await read(`${dir}/ca.pem`);
        const caCert = new x509.X509Certificate(splitPem(ca).cert);
        const keys = (await globalThis.crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
        const cert = await x509.X509CertificateGenerator.create({
          serialNumber: serial(),
          subject: `CN=${spec.commonName}`,
          issuer: caCert.subject,
          notBefore: new Date(now.getTime() - 3_600_000),
          notAfter: new Date(now.getTime() + (spec.days ?? 825) * DAY),
          signingKey: await importKey(ca),
          publicKey: keys.publicKey,
          signingAlgorithm: ALG,
          extensions: [
            new x509.BasicConstraintsExtension(false, undefined, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
            new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
            new x509.SubjectAlternativeNameExtension([
              ...spec.dns.map((value) => ({ type: 'dns' as const, value })),
              ...spec.ips.map((value) => ({ type: 'ip' as const, value })),
            ]),
          ],
        });
        return `${pemKey(await globalThis.crypto.subtle.exportKey('pkcs8', keys.privateKey))}\n${cert.toString('pem')}\n`;
      },
      stale: (value, now) => expiresWithin(value, RENEW_DAYS, now),
    },
    { path: `${dir}/${spec.name}.crt`, generate: async (read) => splitPem(await read(combined)).cert, derived: true },
    { path: `${dir}/${spec.name}.key`, generate: async (read) => splitPem(await read(combined)).key, derived: true },
  ];
}
