/**
 * Pure validation of a parsed platform document: schema → normalize → cross-reference rules.
 * Returns every problem at once as path + message; the loader turns paths into FILE:LINE:COL.
 */
import { Value } from '@sinclair/typebox/value';
import { isAbsolute, resolve } from 'node:path';
import { homedir } from 'node:os';
import { PlatformSchema, type PlatformDoc } from '../model/schema.js';
import type { Host, Platform } from '../model/platform.js';
import type { ArtifactRef } from '../model/resources.js';
import type { SecretSource } from '../secrets.js';
import { RULES } from './rules.js';

/** A problem at a document path; `key: true` points at the key rather than the value. */
export interface Problem {
  path: (string | number)[];
  message: string;
  key?: boolean;
}

export interface ValidateContext {
  /** Absolute path of the platform file. */
  file: string;
  /** Template files read by the loader (path as written → content, or undefined when unreadable). */
  templates: Record<string, string | undefined>;
  /** Local files that exist (artifact paths, secret files), as written → exists. */
  localFiles: Record<string, boolean>;
  secrets: SecretSource;
}

export interface ValidateResult {
  platform?: Platform;
  problems: Problem[];
}

export function validatePlatform(raw: unknown, ctx: ValidateContext): ValidateResult {
  const schemaProblems = checkSchema(raw);
  if (schemaProblems.length > 0) return { problems: schemaProblems };
  const doc = raw as PlatformDoc;
  const platform = normalize(doc, ctx);
  const problems = RULES.flatMap((rule) => rule(platform, ctx));
  return problems.length > 0 ? { problems } : { platform, problems };
}

function splitPointer(p: string): (string | number)[] {
  if (p === '') return [];
  return p
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  return typeof v === 'object' ? 'a mapping' : typeof v;
}

/** Schema errors with messages written for people; one per path. */
function checkSchema(raw: unknown): Problem[] {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return [{ path: [], message: 'the file must be a mapping with at least `version: 1` and `hosts:`' }];
  }
  const seen = new Set<string>();
  const out: Problem[] = [];
  for (const e of Value.Errors(PlatformSchema, raw)) {
    const path = splitPointer(e.path);
    const k = path.join('/');
    // Errors below a path that is already wrong are noise.
    if ([...seen].some((s) => k === s || k.startsWith(`${s}/`))) continue;
    seen.add(k);
    const schema = e.schema as { description?: string; errorMessage?: string; pattern?: string; type?: string; anyOf?: { const?: unknown }[]; minimum?: number; maximum?: number; minItems?: number };
    let message: string;
    if (e.message === 'Unexpected property') {
      message = `unknown key \`${String(path[path.length - 1])}\``;
      out.push({ path, message, key: true });
      continue;
    } else if (e.message.startsWith('Expected required property')) {
      message = `missing required key \`${String(path[path.length - 1])}\``;
      out.push({ path, message, key: true });
      continue;
    } else if (typeof e.value === 'number' && schema.maximum !== undefined && e.value > schema.maximum) {
      message = `must be at most ${schema.maximum}, not ${e.value}`;
    } else if (typeof e.value === 'number' && schema.minimum !== undefined && e.value < schema.minimum) {
      message = `must be at least ${schema.minimum}, not ${e.value}`;
    } else if (Array.isArray(e.value) && schema.minItems !== undefined && e.value.length < schema.minItems) {
      message = `must list at least ${schema.minItems} item${schema.minItems === 1 ? '' : 's'}`;
    } else if (schema.pattern && typeof e.value === 'string') {
      message = `"${e.value}" ${schema.errorMessage ?? `must match ${schema.pattern}`}`;
    } else if (schema.anyOf && schema.anyOf.every((s) => 'const' in s)) {
      message = `must be one of ${schema.anyOf.map((s) => JSON.stringify(s.const)).join(', ')}, not ${JSON.stringify(e.value)}`;
    } else if (/^Expected (string|integer|number|boolean|array|object)$/.test(e.message)) {
      const want = e.message.slice('Expected '.length).replace('array', 'a list').replace('object', 'a mapping');
      message = `must be ${want === 'integer' ? 'an integer' : want.startsWith('a ') ? want : `a ${want}`}, not ${describe(e.value)}`;
    } else if (schema.errorMessage) {
      // e.g. a union (a count or a percentage) whose own message says what is accepted.
      message = `${JSON.stringify(e.value)} ${schema.errorMessage}`;
    } else {
      message = e.message.charAt(0).toLowerCase() + e.message.slice(1);
    }
    out.push({ path, message });
  }
  return out;
}

function normalize(doc: PlatformDoc, ctx: ValidateContext): Platform {
  const dir = resolve(ctx.file, '..');
  const abs = (p: string) => (p.startsWith('~/') ? resolve(homedir(), p.slice(2)) : isAbsolute(p) ? p : resolve(dir, p));
  const d = doc.defaults ?? {};
  const hosts: Host[] = doc.hosts.map((h, index) => {
    const user = h.user ?? d.user ?? 'root';
    const key = h.key ?? d.key;
    const jump = h.jump ?? d.jump;
    return {
      name: h.name,
      address: h.address,
      port: h.port ?? d.port ?? 22,
      user,
      become: h.become ?? d.become ?? user !== 'root',
      ...(key ? { keyFile: abs(key) } : {}),
      knownHostsFile: abs(h.known_hosts ?? d.known_hosts ?? '~/.ssh/known_hosts'),
      ...(jump
        ? { jump: { address: jump.address, port: jump.port ?? 22, user: jump.user ?? user, ...(jump.key ?? key ? { keyFile: abs((jump.key ?? key)!) } : {}) } }
        : {}),
      labels: h.labels ?? [],
      connectTimeoutMs: (h.connect_timeout ?? d.connect_timeout ?? 10) * 1000,
      commandTimeoutMs: (h.command_timeout ?? d.command_timeout ?? 600) * 1000,
      index,
    };
  });
  const artifacts: Record<string, ArtifactRef> = {};
  for (const [name, a] of Object.entries(doc.artifacts ?? {})) {
    artifacts[name] = {
      name,
      version: a.version,
      sha256: a.sha256,
      format: a.format ?? 'binary',
      filename: a.filename ?? name,
      source: a.url ?? (a.path ? abs(a.path) : ''),
    };
  }
  const templates: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.templates)) if (v !== undefined) templates[k] = v;
  return { name: doc.name ?? 'platform', file: ctx.file, dir, hosts, artifacts, doc, templates };
}
