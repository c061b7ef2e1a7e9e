/**
 * Listener certificates for HAProxy from an internal CA made on the operator's side as generated secrets:
 * the CA (ECDSA P-256, 10 years) under `.rtctl/secrets/haproxy/ca.key` + `ca.crt`, and one PEM per TLS listener
 * holding certificate + key (HAProxy's `crt` form), made again `renewBeforeDays` before expiry or when its names
 * change, so `plan` shows the renewal. Self-contained on purpose: a shared CA module (recipes/pki.ts / ca.ts)
 * was being rewritten while this was built; moving to it later is a change of import and paths only.
 */
// @peculiar/x509 uses tsyringe, which needs the Reflect metadata polyfill loaded before it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import type { GeneratedSecret } from './types.js';

export const CA_KEY = '.rtctl/secrets/haproxy/ca.key';
export const CA_CERT = '.rtctl/secrets/haproxy/ca.crt';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;

x509.cryptoProvider.set(globalThis.crypto);

async function keyPem(k: CryptoKey): Promise<string> {
  return `${x509.PemConverter.encode(await globalThis.crypto.subtle.exportKey('pkcs8', k), 'PRIVATE KEY')}\n`;
}

async function importKeys(pem: string): Promise<CryptoKeyPair> {
  const der = x509.PemConverter.decode(pem)[0]!;
  const privateKey = await globalThis.crypto.subtle.importKey('pkcs8', der, ALG, true, ['sign']);
  // WebCrypto can't derive a public key from a private one; an EC private key's JWK carries x and y.
  const jwk = await globalThis.crypto.subtle.exportKey('jwk', privateKey);
  delete jwk.d;
  jwk.key_ops = ['verify'];
  return { privateKey, publicKey: await globalThis.crypto.subtle.importKey('jwk', jwk, ALG, true, ['verify']) };
}

function serial(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f;
  return Buffer.from(b).toString('hex');
}

/** The first certificate of a PEM bundle. */
export function firstCert(pem: string): x509.X509Certificate {
  const m = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem);
  return new x509.X509Certificate(m?.[0] ?? '');
}

export function caSecrets(): GeneratedSecret[] {
  return [
    { path: CA_KEY, generate: async () => keyPem(((await globalThis.crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair).privateKey) },
    {
      path: CA_CERT,
      async generate(read, now) {
        const keys = await importKeys(await read(CA_KEY));
        const cert = await x509.X509CertificateGenerator.createSelfSigned({
          serialNumber: serial(), name: 'CN=rtctl front door CA', notBefore: new Date(now.getTime() - 3_600_000), notAfter: new Date(now.getTime() + 3650 * DAY),
          keys, signingAlgorithm: ALG,
          extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
        });
        return `${cert.toString('pem')}\n`;
      },
      stale: (v, now) => { try { return firstCert(v).notAfter.getTime() - now.getTime() < 365 * DAY; } catch { return true; } },
    },
  ];
}

export interface LeafSpec {
  path: string;
  commonName: string;
  dnsNames: string[];
  ips: string[];
  validityDays: number;
  renewBeforeDays: number;
}

/** True when the certificate in `pem` expires within `days` or doesn't carry exactly the wanted names. */
export function needsRenewal(pem: string, spec: LeafSpec, now: Date): boolean {
  try {
    const cert = firstCert(pem);
    if (cert.notAfter.getTime() - now.getTime() < spec.renewBeforeDays * DAY) return true;
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    const have = (san?.names.items ?? []).map((n) => `${n.type}:${n.value}`).sort();
    return JSON.stringify(have) !== JSON.stringify([...spec.dnsNames.map((d) => `dns:${d}`), ...spec.ips.map((i) => `ip:${i}`)].sort());
  } catch {
    return true;
  }
}

export function leafSecret(spec: LeafSpec): GeneratedSecret {
  return {
    path: spec.path,
    async generate(read, now) {
      const ca = firstCert(await read(CA_CERT));
      const caKeys = await importKeys(await read(CA_KEY));
      const keys = (await globalThis.crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: serial(), subject: `CN=${spec.commonName}`, issuer: ca.subject,
        notBefore: new Date(now.getTime() - 3_600_000), notAfter: new Date(now.getTime() + spec.validityDays * DAY),
        publicKey: keys.publicKey, signingKey: caKeys.privateKey, signingAlgorithm: ALG,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
          new x509.SubjectAlternativeNameExtension([...spec.dnsNames.map((value) => ({ type: 'dns' as const, value })), ...spec.ips.map((value) => ({ type: 'ip' as const, value }))]),
        ],
      });
      return `${cert.toString('pem')}\n${ca.toString('pem')}\n${await keyPem(keys.privateKey)}`;
    },
    stale: (v, now) => needsRenewal(v, spec, now),
  };
}
