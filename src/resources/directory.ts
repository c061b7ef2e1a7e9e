/** Manage directories: existence, owner, group, mode. Removal only removes an empty directory. */
import type { DirectoryResource } from '../model/resources.js';
import { makeId } from '../model/resources.js';
import { attrDetails } from './file.js';
import type { ResourceHandler } from './types.js';

export const directory: ResourceHandler<DirectoryResource> = {
  type: 'directory',
  probeFunction: `p_directory() { p_path "directory:$1" "$1" 0; }`,
  probeArgs: (r) => [r.path],
  diff(r, fact) {
    const kind = fact.kind ?? 'absent';
    if (kind === 'absent') return { action: 'create', details: [`${r.owner}:${r.group} ${r.mode}`] };
    if (kind !== 'dir') return { action: 'update', details: [`replace ${kind} with a directory`] };
    const details = attrDetails(r, fact);
    return details.length ? { action: 'update', details } : undefined;
  },
  exists: (fact) => fact.kind === 'dir',
  steps(c) {
    const r = c.resource;
    if (c.action === 'delete') {
      return [{ kind: 'sh', desc: `remove ${r.path} (if empty)`, script: 'rmdir -- "$1" 2>/dev/null || echo "kept $1: not empty" >&2', args: [r.path] }];
    }
    return [{
      kind: 'sh', desc: `directory ${r.path}`,
      script: 'set -eu; if [ -e "$1" ] && [ ! -d "$1" ]; then rm -f -- "$1"; fi; mkdir -p -- "$1"; chown "$2:$3" "$1"; chmod "$4" "$1"',
      args: [r.path, r.owner, r.group, r.mode],
    }];
  },
  fromManifest: (key) => ({ type: 'directory', id: makeId('directory', key), path: key, owner: 'root', group: 'root', mode: '0755' }),
};
