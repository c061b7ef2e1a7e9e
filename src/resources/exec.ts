/** Idempotent commands: a probe prints the state; `run` runs when it is not the wanted one. */
import type { ExecResource } from '../model/resources.js';
import { makeId } from '../model/resources.js';
import type { ResourceHandler } from './types.js';

export const exec: ResourceHandler<ExecResource> = {
  type: 'exec',
  // The probe snippet runs in a subshell so that its failure or `exit` can't end the facts script.
  probeFunction: `p_exec() { emit "exec:$1" state "$( (eval "$2") 2>/dev/null | tr '\\n' ' ' | sed 's/ *$//')"; }`,
  probeArgs: (r) => [r.name, r.probe],
  diff(r, fact) {
    if ((fact.state ?? '') === r.want) return undefined;
    return { action: fact.state ? 'update' : 'create', details: [r.description, ...(r.showState && fact.state ? [fact.state] : [])] };
  },
  exists: () => false,
  steps(c) {
    const r = c.resource;
    return [{ kind: 'sh', desc: r.description, script: r.run, args: [], ...(r.stdin !== undefined ? { stdin: r.stdin } : {}) }];
  },
  fromManifest: (key) => ({ type: 'exec', id: makeId('exec', key), name: key, probe: 'true', want: '', run: 'true', description: key }),
};
