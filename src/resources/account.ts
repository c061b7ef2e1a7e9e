/** Manage Unix groups and users (created with the system tools; removal removes only what rtctl created). */
import type { GroupResource, UserResource } from '../model/resources.js';
import { makeId } from '../model/resources.js';
import type { ResourceHandler } from './types.js';

export const group: ResourceHandler<GroupResource> = {
  type: 'group',
  probeFunction: `p_group() { g=$(getent group "$1") && emit "group:$1" gid "$(echo "$g" | cut -d: -f3)" || emit "group:$1" gid ''; }`,
  probeArgs: (r) => [r.name],
  diff: (r, fact) => (fact.gid ? undefined : { action: 'create', details: [r.system ? 'system group' : 'group'] }),
  exists: (fact) => !!fact.gid,
  steps(c) {
    const r = c.resource;
    if (c.action === 'delete') return [{ kind: 'sh', desc: `remove group ${r.name}`, script: 'groupdel "$1"', args: [r.name] }];
    return [{ kind: 'sh', desc: `group ${r.name}`, script: r.system ? 'groupadd --system "$1"' : 'groupadd "$1"', args: [r.name] }];
  },
  fromManifest: (key) => ({ type: 'group', id: makeId('group', key), name: key, system: true }),
};

export const user: ResourceHandler<UserResource> = {
  type: 'user',
  probeFunction: `p_user() {
  if u=$(getent passwd "$1"); then
    emit "user:$1" uid "$(echo "$u" | cut -d: -f3)"; emit "user:$1" home "$(echo "$u" | cut -d: -f6)"; emit "user:$1" shell "$(echo "$u" | cut -d: -f7)"
    emit "user:$1" groups "$(id -Gn "$1" | tr ' ' '\\n' | grep -vx "$(id -gn "$1")" | sort | tr '\\n' ' ' | sed 's/ $//')"
  else emit "user:$1" uid ''; fi
}`,
  probeArgs: (r) => [r.name],
  diff(r, fact) {
    if (!fact.uid) return { action: 'create', details: [`${r.system ? 'system user' : 'user'}, home ${r.home}, shell ${r.shell}${r.groups.length ? `, groups ${r.groups.join(',')}` : ''}`] };
    const details: string[] = [];
    if (fact.home !== r.home) details.push(`home ${fact.home} → ${r.home}`);
    if (fact.shell !== r.shell) details.push(`shell ${fact.shell} → ${r.shell}`);
    const groups = r.groups.join(' ');
    if ((fact.groups ?? '') !== groups) details.push(`groups ${fact.groups || '(none)'} → ${groups || '(none)'}`);
    return details.length ? { action: 'update', details } : undefined;
  },
  exists: (fact) => !!fact.uid,
  steps(c) {
    const r = c.resource;
    if (c.action === 'delete') return [{ kind: 'sh', desc: `remove user ${r.name}`, script: 'userdel "$1"', args: [r.name] }];
    const groups = r.groups.join(',');
    if (c.action === 'create') {
      return [{
        kind: 'sh', desc: `user ${r.name}`,
        script: 'set -eu; n=$1; if getent group "$n" >/dev/null; then g="-g $n"; else g="-U"; fi; useradd $5 $g -d "$2" -s "$3" ${4:+-G "$4"} "$n"',
        args: [r.name, r.home, r.shell, groups, r.system ? '--system' : '-m'],
      }];
    }
    return [{ kind: 'sh', desc: `user ${r.name}`, script: 'usermod -d "$2" -s "$3" -G "$4" "$1"', args: [r.name, r.home, r.shell, groups] }];
  },
  fromManifest: (key) => ({ type: 'user', id: makeId('user', key), name: key, system: true, home: '', shell: '', groups: [] }),
};
