/**
 * The primitives section of platform.yaml (packages, groups, users, directories, files, units, releases) as
 * resources per host. Pure: templates were read by the loader, secrets stay references.
 */
import Mustache from 'mustache';
import type { Host, Platform } from '../src/model/platform.js';
import { selectHosts } from '../src/model/platform.js';
import { makeId, type Resource } from '../src/model/resources.js';
import { hasRefs } from '../src/secrets.js';
import type { Recipe } from './types.js';

/** Octal mode normalized to 4 digits ("644" → "0644"). */
export function normMode(mode: string | undefined, fallback: string): string {
  return (mode ?? fallback).padStart(4, '0');
}

export function unitId(name: string): string {
  return makeId('unit', name);
}

/** Renders a Mustache template without HTML escaping (these are config files, not web pages). */
export function renderTemplate(template: string, view: Record<string, unknown>): string {
  return Mustache.render(template, view, {}, { escape: (s: string) => s });
}

export const primitives: Recipe = {
  name: 'primitives',
  resources(p: Platform, host: Host): Resource[] {
    const d = p.doc;
    const on = (sel: string[] | undefined) => selectHosts(p.hosts, sel).some((h) => h.name === host.name);
    const out: Resource[] = [];
    (d.packages ?? []).forEach((x, i) => {
      if (on(x.hosts)) out.push({ type: 'package', id: makeId('package', x.name), name: x.name, ...(x.version ? { version: x.version } : {}), origin: { path: `packages/${i}` } });
    });
    (d.groups ?? []).forEach((x, i) => {
      if (on(x.hosts)) out.push({ type: 'group', id: makeId('group', x.name), name: x.name, system: x.system ?? true, origin: { path: `groups/${i}` } });
    });
    (d.users ?? []).forEach((x, i) => {
      if (!on(x.hosts)) return;
      const system = x.system ?? true;
      out.push({
        type: 'user', id: makeId('user', x.name), name: x.name, system,
        home: x.home ?? (system ? '/nonexistent' : `/home/${x.name}`),
        shell: x.shell ?? (system ? '/usr/sbin/nologin' : '/bin/bash'),
        groups: [...(x.groups ?? [])].sort(),
        origin: { path: `users/${i}` },
      });
    });
    (d.directories ?? []).forEach((x, i) => {
      if (on(x.hosts)) out.push({ type: 'directory', id: makeId('directory', x.path), path: x.path.replace(/\/+$/, '') || '/', owner: x.owner ?? 'root', group: x.group ?? 'root', mode: normMode(x.mode, '0755'), origin: { path: `directories/${i}` } });
    });
    (d.files ?? []).forEach((x, i) => {
      if (!on(x.hosts)) return;
      const content = x.template !== undefined
        ? renderTemplate(p.templates[x.template] ?? '', { ...(x.vars ?? {}), host: { name: host.name, address: host.address, labels: host.labels }, platform: { name: p.name } })
        : (x.content ?? '');
      const sensitive = hasRefs(content);
      out.push({
        type: 'file', id: makeId('file', x.path), path: x.path, content, sensitive,
        owner: x.owner ?? 'root', group: x.group ?? 'root',
        // Files holding secrets are 0600 unless a mode is given explicitly.
        mode: normMode(x.mode, sensitive ? '0600' : '0644'),
        ...(x.check ? { check: x.check } : {}),
        ...(x.notify ? { notify: x.notify.map(unitId) } : {}),
        origin: { path: `files/${i}` },
      });
    });
    (d.releases ?? []).forEach((x, i) => {
      const artifact = p.artifacts[x.artifact];
      if (!on(x.hosts) || !artifact) return;
      out.push({
        type: 'release', id: makeId('release', x.dir), dir: x.dir.replace(/\/+$/, ''), artifact, keep: x.keep ?? 3, owner: x.owner ?? 'root',
        ...(x.notify ? { notify: x.notify.map(unitId) } : {}),
        origin: { path: `releases/${i}` },
      });
    });
    (d.units ?? []).forEach((x, i) => {
      if (!on(x.hosts)) return;
      out.push({
        type: 'unit', id: unitId(x.name), name: x.name, content: x.content, enabled: x.enabled ?? true, started: x.started ?? true,
        reload: x.reload ?? false, sensitive: hasRefs(x.content), origin: { path: `units/${i}` },
      });
    });
    return out;
  },
};
