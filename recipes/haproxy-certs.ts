/**
 * Listener certificates for HAProxy from an internal CA made on the operator's side as generated secrets:
 * the CA (ECDSA P-256, 10 years) under `.rtctl/secrets/haproxy/ca.key` + `ca.crt`, and one PEM per TLS listener
 * holding certificate + CA certificate + key (HAProxy's `crt` form), made again `renewBeforeDays` before expiry
 * or when its names change, so `plan` shows the renewal. The certificates are made by recipes/ca.ts; only the
 * file layout (key and certificate apart, the bundle order) is HAProxy's own.
 */
// @peculiar/x509 uses tsyringe, which needs the Reflect metadata polyfill loaded before it.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { expiresWithin, firstCert, importKeyPair, issueLeaf, keyPem, newKeyPair, selfSignedCa } from './ca.js';
import type { GeneratedSecret } from './types.js';

export const CA_KEY = '.rtctl/secrets/haproxy/ca.key';
export const CA_CERT = '.rtctl/secrets/haproxy/ca.crt';

export function caSecrets(): GeneratedSecret[] {
  return [
    { path: CA_KEY, generate: async () => keyPem((await newKeyPair()).privateKey) },
    {
      path: CA_CERT,
      generate: async (read, now) => `${(await selfSignedCa('rtctl front door CA', now, await importKeyPair(await read(CA_KEY)))).cert.toString('pem')}\n`,
      stale: (v, now) => expiresWithin(v, 365, now),
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
  if (expiresWithin(pem, spec.renewBeforeDays, now)) return true;
  try {
    const cert = firstCert(pem);
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
      const req = { commonName: spec.commonName, dns: spec.dnsNames, ips: spec.ips, days: spec.validityDays, client: false };
      const { keys, cert } = await issueLeaf(ca, (await importKeyPair(await read(CA_KEY))).privateKey, req, now);
      return `${cert.toString('pem')}\n${ca.toString('pem')}\n${await keyPem(keys.privateKey)}`;
    },
    stale: (v, now) => needsRenewal(v, spec, now),
  };
}
