/** Manage files: content compared by SHA-256, written atomically (stage, check, rename). */
import { createHash } from 'node:crypto';
import { createTwoFilesPatch } from 'diff';
import type { FileResource } from '../model/resources.js';
import { makeId } from '../model/resources.js';
import type { Change, RawFact, ResourceHandler, Step } from './types.js';

/** Content up to this size is read back by the probe so that `plan` can show a diff. */
export const DIFF_MAX_BYTES = 256 * 1024;

export function sha256(s: string | Buffer): string {
  return createHash('sha256').update(s).digest('hex');
}

/**
 * The write script: stage next to the target (same filesystem, so `mv` is an atomic rename), set owner and
 * mode, run the check on the staged file, then rename. Any failure or interruption removes the staged file
 * and leaves the old one in place.
 */
export const WRITE_SCRIPT = `set -eu
p=$1; owner=$2; group=$3; mode=$4; check=$5; shown=\${6:-$5}
d=$(dirname "$p"); b=$(basename "$p")
[ -d "$d" ] || mkdir -p "$d"
tmp="$d/.rtctl-$b.$$"
trap 'rm -f "$tmp"' EXIT HUP INT TERM
umask 077
cat > "$tmp"
chown "$owner:$group" "$tmp"
chmod "$mode" "$tmp"
if [ -n "$check" ]; then
  if ! out=$(RTCTL_NEW="$tmp" sh -c "$check" 2>&1); then
    printf 'check failed (%s), %s left unchanged:\\n%s\\n' "$shown" "$p" "$out" >&2
    exit 65
  fi
fi
mv -f "$tmp" "$p"
trap - EXIT`;

/** Steps that write `content` to `path` (shared by files and units). `{}` in check is the staged file. */
export function writeStep(desc: string, path: string, content: string, owner: string, group: string, mode: string, check?: string): Step {
  return {
    kind: 'sh',
    desc,
    script: WRITE_SCRIPT,
    args: [path, owner, group, mode, check ? check.split('{}').join('"$RTCTL_NEW"') : '', check ?? ''],
    stdin: content,
  };
}

/** Shell function reporting a path's kind, owner, group, mode, hash and (when allowed and small) content. */
export const PROBE_PATH = `p_path() {
  id=$1; p=$2; readable=\${3:-0}
  if [ -L "$p" ]; then emit "$id" kind link; emit "$id" target "$(readlink "$p")"
  elif [ -f "$p" ]; then
    emit "$id" kind file
    set -- $(stat -c '%U %G %a %s' "$p"); emit "$id" owner "$1"; emit "$id" group "$2"; emit "$id" mode "$3"
    emit "$id" sha256 "$(sha256sum < "$p" | cut -c1-64)"
    if [ "$readable" = 1 ] && [ "$4" -le ${DIFF_MAX_BYTES} ]; then emit "$id" content "$(base64 -w0 < "$p")"; fi
  elif [ -d "$p" ]; then
    emit "$id" kind dir
    set -- $(stat -c '%U %G %a' "$p"); emit "$id" owner "$1"; emit "$id" group "$2"; emit "$id" mode "$3"
  elif [ -e "$p" ]; then emit "$id" kind other
  else emit "$id" kind absent; fi
}`;

export function modeOf(fact: RawFact): string {
  return (fact.mode ?? '').padStart(4, '0');
}

/** Attribute differences of owner/group/mode. */
export function attrDetails(want: { owner: string; group: string; mode: string }, fact: RawFact): string[] {
  const out: string[] = [];
  if (fact.owner !== want.owner) out.push(`owner ${fact.owner} → ${want.owner}`);
  if (fact.group !== want.group) out.push(`group ${fact.group} → ${want.group}`);
  if (modeOf(fact) !== want.mode) out.push(`mode ${modeOf(fact)} → ${want.mode}`);
  return out;
}

/** Unified diff between the host's content (when the probe read it) and the desired content. */
export function contentDiff(path: string, fact: RawFact, desired: string): string | undefined {
  if (fact.content === undefined) return undefined;
  const old = Buffer.from(fact.content, 'base64').toString('utf8');
  return createTwoFilesPatch(path, path, old, desired, 'on host', 'desired', { context: 3 }).split('\n').slice(2).join('\n');
}

export const file: ResourceHandler<FileResource> = {
  type: 'file',
  probeFunction: `p_file() { p_path "file:$1" "$1" "$2"; }`,
  probeArgs: (r) => [r.path, r.sensitive ? '0' : '1'],
  diff(r, fact, ctx) {
    const kind = fact.kind ?? 'absent';
    if (kind === 'absent') {
      return { action: 'create', details: [`${r.content.length} bytes, ${r.owner}:${r.group} ${r.mode}`], ...(r.sensitive ? {} : { diff: contentDiff(r.path, { content: '' }, r.content) }) };
    }
    if (kind !== 'file') return { action: 'update', details: [`replace ${kind} with a file`] };
    const details = attrDetails(r, fact);
    const want = ctx.contentSha256(r.content);
    let diff: string | undefined;
    if (fact.sha256 !== want) {
      details.unshift(r.sensitive ? 'content changed (sensitive)' : 'content changed');
      if (!r.sensitive) diff = contentDiff(r.path, fact, r.content);
    }
    if (details.length === 0) return undefined;
    return { action: 'update', details, ...(diff ? { diff } : {}) };
  },
  exists: (fact) => fact.kind === 'file' || fact.kind === 'link',
  steps(c) {
    const r = c.resource;
    if (c.action === 'delete') return [{ kind: 'sh', desc: `remove ${r.path}`, script: 'rm -f -- "$1"', args: [r.path] }];
    return [writeStep(`write ${r.path}`, r.path, r.content, r.owner, r.group, r.mode, r.check)];
  },
  fromManifest: (key) => ({ type: 'file', id: makeId('file', key), path: key, content: '', owner: 'root', group: 'root', mode: '0644', sensitive: true }),
};

export type { Change };
