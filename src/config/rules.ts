/**
 * Cross-reference rules, each a small named function over the normalized platform. Each returns problems at
 * document paths; all rules always run, so every problem is reported at once.
 */
import type { Platform } from '../model/platform.js';
import { selectHosts } from '../model/platform.js';
import { findRefs } from '../secrets.js';
import { hint } from '../util/hint.js';
import type { Problem, ValidateContext } from './validate.js';
import { desiredResources, RECIPES } from '../../recipes/index.js';

type Rule = (p: Platform, ctx: ValidateContext) => Problem[];

function duplicates<T>(items: readonly T[], key: (t: T) => string): [number, T, number][] {
  const first = new Map<string, number>();
  const out: [number, T, number][] = [];
  items.forEach((it, i) => {
    const k = key(it);
    const f = first.get(k);
    if (f === undefined) first.set(k, i);
    else out.push([i, it, f]);
  });
  return out;
}

const uniqueHosts: Rule = (p) => [
  ...duplicates(p.hosts, (h) => h.name).map(([i, h, f]) => ({
    path: ['hosts', i, 'name'],
    message: `duplicate host name "${h.name}" (first at hosts/${f})`,
  })),
  ...duplicates(p.hosts, (h) => `${h.address}:${h.port}`).map(([i, h, f]) => ({
    path: ['hosts', i, 'address'],
    message: `hosts/${f} already uses ${h.address}:${h.port}`,
  })),
];

const labelsAreNotHostNames: Rule = (p) => {
  const names = new Set(p.hosts.map((h) => h.name));
  return p.hosts.flatMap((h) =>
    h.labels.flatMap((l, j) =>
      names.has(l) || l === 'all' ? [{ path: ['hosts', h.index, 'labels', j], message: `label "${l}" is also a host name${l === 'all' ? ' (reserved)' : ''}: selectors would be ambiguous` }] : [],
    ),
  );
};

/** Every selector (`hosts:` of a resource) names known hosts or labels. */
const selectorsResolve: Rule = (p) => {
  const known = new Set(['all', ...p.hosts.map((h) => h.name), ...p.hosts.flatMap((h) => h.labels)]);
  const out: Problem[] = [];
  for (const [section, items] of Object.entries(p.doc)) {
    if (!Array.isArray(items) || section === 'hosts') continue;
    items.forEach((item: { hosts?: string[] }, i) => {
      item.hosts?.forEach((s, j) => {
        if (!known.has(s)) out.push({ path: [section, i, 'hosts', j], message: `unknown host or label "${s}"` });
      });
      if (item.hosts && selectHosts(p.hosts, item.hosts).length === 0 && item.hosts.every((s) => known.has(s))) {
        out.push({ path: [section, i, 'hosts'], message: 'selects no host' });
      }
    });
  }
  return out;
};

const artifactsHaveOneSource: Rule = (p, ctx) =>
  Object.entries(p.doc.artifacts ?? {}).flatMap(([name, a]) => {
    if (!!a.url === !!a.path) return [{ path: ['artifacts', name], message: `artifact "${name}" needs exactly one of \`url\` or \`path\``, key: true }];
    if (a.path && ctx.localFiles[a.path] === false) return [{ path: ['artifacts', name, 'path'], message: `file not found: ${a.path}` }];
    return [];
  });

const releasesUseKnownArtifacts: Rule = (p) =>
  (p.doc.releases ?? []).flatMap((r, i) =>
    p.artifacts[r.artifact] ? [] : [{ path: ['releases', i, 'artifact'], message: `unknown artifact "${r.artifact}"${hint(r.artifact, Object.keys(p.artifacts))}` }],
  );

const filesHaveOneSource: Rule = (p, ctx) =>
  (p.doc.files ?? []).flatMap((f, i) => {
    if ((f.content === undefined) === (f.template === undefined)) return [{ path: ['files', i], message: 'a file needs exactly one of `content` or `template`' }];
    if (f.template !== undefined && ctx.templates[f.template] === undefined) return [{ path: ['files', i, 'template'], message: `template not found: ${f.template}` }];
    if (f.check !== undefined && !f.check.includes('{}')) return [{ path: ['files', i, 'check'], message: 'a check command must name the new file as `{}`' }];
    return [];
  });

/** Every `${env:…}` / `${file:…}` reference resolves now, so an apply can't fail halfway for a missing secret. */
const secretsResolve: Rule = (_p, ctx) => {
  const out: Problem[] = [];
  // Secrets rtctl generates itself exist only after the first plan or apply.
  const generated = new Set(RECIPES.flatMap((r) => r.secrets?.(_p) ?? []).map((g) => g.path));
  const walk = (v: unknown, path: (string | number)[]) => {
    if (typeof v === 'string') {
      for (const ref of findRefs(v)) {
        if (ref.kind === 'file' && generated.has(ref.name)) continue;
        const ok = ref.kind === 'env' ? ctx.secrets.env(ref.name) !== undefined : ctx.secrets.file(ref.name) !== undefined;
        if (!ok) out.push({ path, message: ref.kind === 'env' ? `secret ${ref.text}: environment variable ${ref.name} is not set` : `secret ${ref.text}: file ${ref.name} cannot be read` });
      }
    } else if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(_p.doc, []);
  return out;
};

/** No two resources with the same identity on one host, and no two units on one port of one host. */
const noClashesPerHost: Rule = (p) => {
  const out: Problem[] = [];
  for (const [host, resources] of desiredResources(p)) {
    const seen = new Map<string, string>();
    for (const r of resources) {
      const at = r.origin?.path ?? '?';
      const prev = seen.get(r.id);
      if (prev !== undefined && prev !== at) out.push({ path: at.split('/').map((s) => (/^\d+$/.test(s) ? Number(s) : s)), message: `${r.id} is also declared at ${prev} for host ${host}` });
      else seen.set(r.id, at);
    }
  }
  const ports = new Map<string, string>();
  for (const h of p.hosts) {
    (p.doc.units ?? []).forEach((u, i) => {
      if (!selectHosts(p.hosts, u.hosts).some((x) => x.name === h.name)) return;
      u.ports?.forEach((port, j) => {
        const k = `${h.name}:${port}`;
        const prev = ports.get(k);
        if (prev && prev !== `units/${i}`) out.push({ path: ['units', i, 'ports', j], message: `port ${port} on host ${h.name} is already used by ${prev}` });
        else ports.set(k, `units/${i}`);
      });
    });
  }
  return dedupe(out);
};

const notifyTargetsAreUnits: Rule = (p) => {
  const units = new Set((p.doc.units ?? []).map((u) => u.name));
  const check = (section: 'files' | 'releases') =>
    (p.doc[section] ?? []).flatMap((f, i) =>
      (f.notify ?? []).flatMap((n, j) => (units.has(n) ? [] : [{ path: [section, i, 'notify', j], message: `unknown unit "${n}"${hint(n, [...units])}` }])),
    );
  return [...check('files'), ...check('releases')];
};

function dedupe(ps: Problem[]): Problem[] {
  const seen = new Set<string>();
  return ps.filter((x) => {
    const k = `${x.path.join('/')}\0${x.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Each recipe's own rules for its section. */
const recipeRules: Rule[] = [(p) => RECIPES.flatMap((r) => r.rules?.(p) ?? [])];

export const RULES: Rule[] = [
  ...recipeRules,
  uniqueHosts,
  labelsAreNotHostNames,
  selectorsResolve,
  artifactsHaveOneSource,
  releasesUseKnownArtifacts,
  filesHaveOneSource,
  notifyTargetsAreUnits,
  secretsResolve,
  noClashesPerHost,
];
