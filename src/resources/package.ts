/** Manage apt packages. apt's lists are refreshed at most once an hour, and only when something is installed. */
import type { PackageResource } from '../model/resources.js';
import { makeId } from '../model/resources.js';
import type { ResourceHandler } from './types.js';

const APT_ENV = 'export DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a';
/** Refresh apt lists when they are missing or older than an hour. */
const APT_UPDATE = `if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mmin -60 2>/dev/null | head -1)" ]; then apt-get update -qq >/dev/null || apt-get update -qq; fi`;

export const pkg: ResourceHandler<PackageResource> = {
  type: 'package',
  probeFunction: `p_package() {
  s=$(dpkg-query -W -f='\${db:Status-Status} \${Version}' "$1" 2>/dev/null) || s=''
  case "$s" in "installed "*) emit "package:$1" version "\${s#installed }";; *) emit "package:$1" version '';; esac
}`,
  probeArgs: (r) => [r.name],
  diff(r, fact) {
    if (!fact.version) return { action: 'create', details: [r.version ? `install ${r.version}` : 'install'] };
    if (r.version && r.version !== fact.version) return { action: 'update', details: [`version ${fact.version} → ${r.version}`] };
    return undefined;
  },
  exists: (fact) => !!fact.version,
  steps(c) {
    const r = c.resource;
    if (c.action === 'delete') {
      return [{ kind: 'sh', desc: `remove package ${r.name}`, script: `${APT_ENV}; apt-get remove -y -qq "$1"`, args: [r.name] }];
    }
    const spec = r.version ? `${r.name}=${r.version}` : r.name;
    return [{
      kind: 'sh', desc: `install package ${spec}`,
      script: `set -e; ${APT_ENV}; ${APT_UPDATE}; apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$1" >/dev/null`,
      args: [spec],
    }];
  },
  fromManifest: (key) => ({ type: 'package', id: makeId('package', key), name: key }),
};
