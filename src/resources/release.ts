/**
 * Artifact releases (Capistrano-style): `<dir>/releases/<version>` verified by SHA-256 on the host, an atomic
 * `<dir>/current` symlink (ln to a temp name, then rename), and the newest `keep` releases kept for rollback.
 * The artifact is uploaded over SFTP only when the host lacks that release.
 */
import type { ReleaseResource } from '../model/resources.js';
import { makeId } from '../model/resources.js';
import type { ResourceHandler, Step } from './types.js';

/** Where uploads are staged for the login user (SFTP writes as that user, before sudo moves them). */
export function stagingPath(user: string, sha256: string): string {
  return `/tmp/rtctl-stage-${user}/${sha256}`;
}

const INSTALL = `set -eu
dir=$1; v=$2; sha=$3; fmt=$4; fname=$5; owner=$6; src=$7
rel="$dir/releases/$v"
if [ "$(cat "$rel/.rtctl-sha256" 2>/dev/null)" != "$sha" ]; then
  [ -f "$src" ] || { echo "artifact not staged at $src" >&2; exit 66; }
  got=$(sha256sum < "$src" | cut -c1-64)
  [ "$got" = "$sha" ] || { rm -f "$src"; echo "checksum mismatch on host: expected $sha, got $got" >&2; exit 66; }
  mkdir -p "$dir/releases"; tmp="$dir/releases/.tmp-$v.$$"; rm -rf "$tmp"; mkdir "$tmp"
  trap 'rm -rf "$tmp"' EXIT HUP INT TERM
  if [ "$fmt" = tar.gz ]; then tar -xzf "$src" -C "$tmp"; else cp "$src" "$tmp/$fname"; chmod 0755 "$tmp/$fname"; fi
  echo "$sha" > "$tmp/.rtctl-sha256"
  chown -R "$owner" "$tmp"; rm -rf "$rel"; mv "$tmp" "$rel"; trap - EXIT
fi
rm -f "$src"`;

const SWITCH = `set -eu
dir=$1; v=$2; keep=$3
touch "$dir/releases/$v"
ln -sfn "releases/$v" "$dir/.current.tmp" && mv -T "$dir/.current.tmp" "$dir/current"
ls -1t "$dir/releases" | grep -v '^\\.' | grep -vx "$v" | tail -n +"$keep" | while read -r old; do rm -rf -- "$dir/releases/$old"; done`;

/** Versions present on the host (`version=sha` pairs, space-separated, from the probe). */
export function presentReleases(fact: Record<string, string>): Map<string, string> {
  return new Map((fact.releases ?? '').split(' ').filter(Boolean).map((p) => p.split('=') as [string, string]));
}

export const release: ResourceHandler<ReleaseResource> = {
  type: 'release',
  probeFunction: `p_release() {
  id="release:$1"
  if [ -d "$1/releases" ]; then
    emit "$id" current "$(readlink "$1/current" 2>/dev/null | sed 's|^releases/||')"
    r=''; for d in "$1"/releases/*/; do [ -f "$d.rtctl-sha256" ] && r="$r $(basename "$d")=$(cat "$d.rtctl-sha256")"; done
    emit "$id" releases "\${r# }"
  else emit "$id" current ''; fi
}`,
  probeArgs: (r) => [r.dir],
  diff(r, fact) {
    const have = presentReleases(fact).get(r.artifact.version) === r.artifact.sha256;
    const current = fact.current ?? '';
    if (current === r.artifact.version && have) return undefined;
    const details = [current ? `${r.artifact.name} ${current} → ${r.artifact.version}` : `${r.artifact.name} ${r.artifact.version}`];
    details.push(have ? 'already on host: switch only' : `upload ${r.artifact.sha256.slice(0, 12)}…`);
    return { action: current ? 'update' : 'create', details };
  },
  exists: (fact) => fact.current !== undefined && fact.current !== '' || !!fact.releases,
  steps(c) {
    const r = c.resource;
    if (c.action === 'delete') return [{ kind: 'sh', desc: `remove ${r.dir}`, script: 'rm -rf -- "$1"', args: [r.dir] }];
    const a = r.artifact;
    const steps: Step[] = [];
    if (!c.details.some((d) => d.startsWith('already on host'))) {
      steps.push({ kind: 'upload-artifact', desc: `upload ${a.name} ${a.version}`, sha256: a.sha256, source: a.source });
      steps.push({ kind: 'sh', desc: `install ${a.name} ${a.version} into ${r.dir}/releases`, script: INSTALL, args: [r.dir, a.version, a.sha256, a.format, a.filename, r.owner, '@STAGED@'] });
    }
    steps.push({ kind: 'sh', desc: `switch ${r.dir}/current → ${a.version}`, script: SWITCH, args: [r.dir, a.version, String(r.keep)] });
    return steps;
  },
  fromManifest: (key) => ({
    type: 'release', id: makeId('release', key), dir: key, keep: 3, owner: 'root',
    artifact: { name: key, version: '', sha256: '', format: 'binary', filename: '', source: '' },
  }),
};
