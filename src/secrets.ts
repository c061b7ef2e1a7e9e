/**
 * Secret references: `${env:NAME}` and `${file:PATH}` inside any string of platform.yaml. They stay references
 * in the model, in plans and in saved plan files; they are resolved only when content is compared or written,
 * and every resolved value is registered with the redactor so that no log line or error can show it.
 * `$${` writes a literal `${`.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';

export interface SecretRef {
  kind: 'env' | 'file';
  name: string;
  /** The reference as written, e.g. `${env:DB_PASSWORD}`. */
  text: string;
  index: number;
}

const REF = /\$?\$\{(env|file):([^}]+)\}/g;

export function findRefs(s: string): SecretRef[] {
  const out: SecretRef[] = [];
  for (const m of s.matchAll(REF)) {
    if (m[0].startsWith('$$')) continue;
    out.push({ kind: m[1] as 'env' | 'file', name: m[2]!, text: m[0], index: m.index });
  }
  return out;
}

export function hasRefs(s: string): boolean {
  return findRefs(s).length > 0;
}

/** Looks secret values up; the only part of this module that does I/O. */
export interface SecretSource {
  env(name: string): string | undefined;
  file(path: string): string | undefined;
}

/** The real source: the process environment and files relative to `baseDir` (platform.yaml's folder). */
export function processSecretSource(baseDir: string): SecretSource {
  return {
    env: (name) => process.env[name],
    file: (path) => {
      try {
        return readFileSync(isAbsolute(path) ? path : resolve(baseDir, path), 'utf8').replace(/\n$/, '');
      } catch {
        return undefined;
      }
    },
  };
}

export class UnresolvedSecretError extends Error {
  readonly ref: SecretRef;
  constructor(ref: SecretRef) {
    super(ref.kind === 'env' ? `secret ${ref.text}: environment variable ${ref.name} is not set` : `secret ${ref.text}: file ${ref.name} cannot be read`);
    this.ref = ref;
  }
}

/** Replaces every reference by its value; registers each value with the redactor. */
export function resolveRefs(s: string, source: SecretSource, redactor?: Redactor): string {
  return s.replace(REF, (whole, kind: string, name: string) => {
    if (whole.startsWith('$$')) return whole.slice(1);
    const value = kind === 'env' ? source.env(name) : source.file(name);
    if (value === undefined) throw new UnresolvedSecretError({ kind: kind as 'env' | 'file', name, text: whole, index: 0 });
    redactor?.add(value);
    return value;
  });
}

/** Masks known secret values in any text that leaves the process (logs, errors, remote stderr). */
export class Redactor {
  private readonly values = new Set<string>();
  add(value: string): void {
    // Very short values would mask ordinary words; refuse to treat them as maskable secrets.
    if (value.length >= 4) this.values.add(value);
  }
  redact(text: string): string {
    let out = text;
    for (const v of [...this.values].sort((a, b) => b.length - a.length)) out = out.split(v).join('(sensitive)');
    return out;
  }
}
