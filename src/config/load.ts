/**
 * Reads platform.yaml: the only part of configuration handling that touches files. Parses with positions,
 * reads templates and checks local files, then hands everything to the pure `validatePlatform`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { ConfigError, ValidationError, type Diagnostic } from '../errors.js';
import type { Platform } from '../model/platform.js';
import { processSecretSource, type SecretSource } from '../secrets.js';
import { validatePlatform, type Problem } from './validate.js';

export interface LoadOptions {
  secrets?: SecretSource;
}

export function loadPlatform(file: string, opts: LoadOptions = {}): Platform {
  const abs = resolve(file);
  let src: string;
  try {
    src = readFileSync(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`${file}: cannot read platform file (${code === 'ENOENT' ? 'no such file' : code ?? String(err)})`);
  }
  return parsePlatform(src, abs, displayName(file), opts);
}

function displayName(file: string): string {
  const rel = relative(process.cwd(), resolve(file));
  return rel.startsWith('..') ? resolve(file) : rel;
}

/** Parse + validate source text; `shown` is the file name used in messages. */
export function parsePlatform(src: string, abs: string, shown: string, opts: LoadOptions = {}): Platform {
  const lineCounter = new LineCounter();
  const doc = parseDocument(src, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const lines = src.split('\n');
  const diag = (offset: number, path: string, message: string): Diagnostic => {
    const { line, col } = lineCounter.linePos(offset);
    return { file: shown, line, col, path, message, source: lines[line - 1] ?? '' };
  };
  if (doc.errors.length > 0) {
    throw new ValidationError(doc.errors.map((e) => diag(e.pos[0], '', `YAML syntax: ${e.message.split('\n')[0]}`)));
  }
  const raw: unknown = doc.toJS({ maxAliasCount: 100 });
  const dir = resolve(abs, '..');
  const local = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  const templates: Record<string, string | undefined> = {};
  const localFiles: Record<string, boolean> = {};
  if (raw && typeof raw === 'object') {
    const r = raw as { files?: unknown; artifacts?: unknown };
    if (Array.isArray(r.files)) {
      for (const f of r.files as { template?: unknown }[]) {
        if (f && typeof f.template === 'string') {
          try {
            templates[f.template] = readFileSync(local(f.template), 'utf8');
          } catch {
            templates[f.template] = undefined;
          }
        }
      }
    }
    if (r.artifacts && typeof r.artifacts === 'object') {
      for (const a of Object.values(r.artifacts as Record<string, { path?: unknown }>)) {
        if (a && typeof a.path === 'string') localFiles[a.path] = existsSync(local(a.path));
      }
    }
  }
  const result = validatePlatform(raw, { file: abs, templates, localFiles, secrets: opts.secrets ?? processSecretSource(dir) });
  if (result.problems.length > 0 || !result.platform) {
    throw new ValidationError(
      result.problems
        .map((p) => diag(locate(doc, p), p.path.join('/'), p.path.length ? `${p.path.join('/')}: ${p.message}` : p.message))
        .sort((a, b) => a.line - b.line || a.col - b.col),
    );
  }
  return result.platform;
}

/** Offset of the node a problem is about: the value, or the key for unknown/missing keys; nearest parent otherwise. */
export function locate(doc: Document, problem: Problem): number {
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
  const path = problem.path;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(seg));
      if (!pair) return offset; // missing key: point at the mapping that lacks it
      const keyNode = pair.key as Node;
      if (last && problem.key) return keyNode.range?.[0] ?? offset;
      node = pair.value;
      offset = (pair.value as Node | null)?.range?.[0] ?? keyNode.range?.[0] ?? offset;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Node | undefined;
      if (!item) return offset;
      node = item;
      offset = item.range?.[0] ?? offset;
    } else {
      return offset;
    }
  }
  return offset;
}

/** `FILE:LINE:COL: message`, the offending line, and a caret. */
export function formatDiagnostics(ds: readonly Diagnostic[]): string {
  return ds
    .map((d) => {
      const head = `${d.file}:${d.line}:${d.col}: ${d.message}`;
      if (d.source === undefined) return head;
      const n = String(d.line);
      return `${head}\n  ${n} | ${d.source}\n  ${' '.repeat(n.length)} | ${' '.repeat(Math.max(0, d.col - 1))}^`;
    })
    .join('\n');
}
