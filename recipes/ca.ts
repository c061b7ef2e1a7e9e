/**
 * An internal certificate authority made on the operator's side, as generated secrets (recipes/types.ts):
 * a CA and leaf certificates signed by it, ECDSA P-256, written once under `.rtctl/secrets/<dir>/` and reused.
 * PostgreSQL's and Consul's TLS use these files; HAProxy's listener certificates (recipes/haproxy-certs.ts) keep
 * their own file layout but are made by the same functions (selfSignedCa, issueLeaf).
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

/** The certificate and the key of a combined PEM (`<key><cert>`). */
export function splitPem(pem: string): { cert: string; key: string } {
  const cert = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/.exec(pem)?.[0] ?? '';
  const key = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/.exec(pem)?.[0] ?? '';
  return { cert: cert.endsWith('\n') ? cert : `${cert}\n`, key: key.endsWith('\n') ? key : `${key}\n` };
}

/** A PKCS#8 PEM of a private key. */
export async function keyPem(k: CryptoKey): Promise<string> {
  return `${x509.PemConverter.encode(await globalThis.crypto.subtle.exportKey('pkcs8', k), 'PRIVATE KEY')}\n`;
}

function serial(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[0] = b[0]! & 0x7f; // positive
  return Buffer.from(b).toString('hex');
}

/** A new ECDSA P-256 key pair. */
export const newKeyPair = async () => (await globalThis.crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;

/**
 * The key pair of a PEM holding a PKCS#8 EC private key (alone or with certificates). WebCrypto can't derive a
 * public key from a private one; an EC private key's JWK carries x and y.
 */
export async function importKeyPair(pem: string): Promise<CryptoKeyPair> {
  const der = x509.PemConverter.decode(splitPem(pem).key)[0]!;
  const privateKey = await globalThis.crypto.subtle.importKey('pkcs8', der, ALG, true, ['sign']);
  const jwk = await globalThis.crypto.subtle.exportKey('jwk', privateKey);
  delete jwk.d;
  jwk.key_ops = ['verify'];
  return { privateKey, publicKey: await globalThis.crypto.subtle.importKey('jwk', jwk, ALG, true, ['verify']) };
}

/** A self-signed CA certificate (10 years; path length 0) for `keys`, or for a new key pair. */
export async function selfSignedCa(commonName: string, now: Date, keys?: CryptoKeyPair): Promise<{ keys: CryptoKeyPair; cert: x509.X509Certificate }> {
  const k = keys ?? (await newKeyPair());
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    notBefore: new Date(now.getTime() - 3_600_000),
    notAfter: new Date(now.getTime() + 3650 * DAY),
    keys: k,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(k.publicKey),
    ],
  });
  return { keys: k, cert };
}

export interface LeafRequest {
  commonName: string;
  dns: string[];
  ips: string[];
  days: number;
  /** Also a TLS client certificate (Consul agents, PostgreSQL); server-only otherwise (HAProxy listeners). */
  client: boolean;
}

/** A new key pair and its leaf certificate signed by the CA (`caCert` with its private key `caKey`). */
export async function issueLeaf(caCert: x509.X509Certificate, caKey: CryptoKey, req: LeafRequest, now: Date): Promise<{ keys: CryptoKeyPair; cert: x509.X509Certificate }> {
  const keys = await newKeyPair();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${req.commonName}`,
    issuer: caCert.subject,
    notBefore: new Date(now.getTime() - 3_600_000),
    notAfter: new Date(now.getTime() + req.days * DAY),
    signingKey: caKey,
    publicKey: keys.publicKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | (req.client ? x509.KeyUsageFlags.keyAgreement : 0), true),
      new x509.ExtendedKeyUsageExtension(req.client ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] : [x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([
        ...req.dns.map((value) => ({ type: 'dns' as const, value })),
        ...req.ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
    ],
  });
  return { keys, cert };
}

/** The first certificate of a PEM (a bundle, or key + certificate). */
export function firstCert(pem: string): x509.X509Certificate {
  return new x509.X509Certificate(splitPem(pem).cert);
}

/** True when the (first) certificate in `pem` expires within `days`, or can't be read. */
export function expiresWithin(pem: string, days: number, now: Date): boolean {
  try {
    const cert = firstCert(pem);
    return cert.notAfter.getTime() - now.getTime() < days * DAY;
  } catch {
    return true;
  }
}

/** Secrets for a CA under `dir` (e.g. `.rtctl/secrets/postgres`): `ca.pem` and `ca.crt`. */
export function caSecrets(dir: string, commonName: string): GeneratedSecret[] {
  const combined = `${dir}/ca.pem`;
  return [
    {
      path: combined,
      async generate(_read, now) {
        const { keys, cert } = await selfSignedCa(commonName, now);
        return `${await keyPem(keys.privateKey)}${cert.toString('pem')}\n`;
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
        const req = { commonName: spec.commonName, dns: spec.dns, ips: spec.ips, days: spec.days ?? 825, client: true };
        const { keys, cert } = await issueLeaf(firstCert(ca), (await importKeyPair(ca)).privateKey, req, now);
        return `${await keyPem(keys.privateKey)}${cert.toString('pem')}\n`;
      },
      stale: (value, now) => expiresWithin(value, RENEW_DAYS, now),
    },
    { path: `${dir}/${spec.name}.crt`, generate: async (read) => splitPem(await read(combined)).cert, derived: true },
    { path: `${dir}/${spec.name}.key`, generate: async (read) => splitPem(await read(combined)).key, derived: true },
  ];
}
