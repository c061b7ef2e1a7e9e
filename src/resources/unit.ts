/**
 * Manage systemd units: the unit file (checked with `systemd-analyze verify` before it replaces the old one),
 * daemon-reload, enabled and active state. Restarts caused by changes are planned separately (handler semantics).
 */
import type { UnitResource } from '../model/resources.js';
import { makeId } from '../model/resources.js';
import { contentDiff, writeStep } from './file.js';
import type { ResourceHandler, Step } from './types.js';

export const UNIT_DIR = '/etc/systemd/system';
/** Plan detail of a new unit file for a unit that is already running (from a package): restart, not start. */
const RESTART_RUNNING = 'restart (running from a package)';

/** Verify a staged unit under its real name (systemd derives the unit type from the file name). */
export function verifyCheck(name: string): string {
  return `d=$(mktemp -d /run/rtctl-verify.XXXXXX) && cp {} "$d/${name}" && systemd-analyze verify "$d/${name}"; rc=$?; rm -rf "$d"; exit $rc`;
}

/** Start (or restart) and confirm it stays up; on failure show the unit's last log lines. */
export function startScript(verb: 'start' | 'restart' | 'reload'): string {
  return `set -u; systemctl ${verb} "$1" || true; i=0
while [ $i -lt 10 ]; do s=$(systemctl is-active "$1"); case "$s" in active) exit 0;; failed|inactive) break;; esac; sleep 0.3; i=$((i+1)); done
s=$(systemctl is-active "$1"); [ "$s" = active ] && exit 0
echo "unit $1 is $s after ${verb}; last log lines:" >&2; journalctl -u "$1" -n 15 --no-pager -o cat >&2; exit 1`;
}

export const unit: ResourceHandler<UnitResource> = {
  type: 'unit',
  probeFunction: `p_unit() {
  p_path "unit:$1" "${UNIT_DIR}/$1" "$2"
  emit "unit:$1" enabled "$(systemctl is-enabled "$1" 2>/dev/null)"; emit "unit:$1" active "$(systemctl is-active "$1" 2>/dev/null)"
}`,
  probeArgs: (r) => [r.name, r.sensitive ? '0' : '1'],
  diff(r, fact, ctx) {
    const want = [r.enabled ? 'enable' : 'disable', r.started ? 'start' : 'stop'];
    if ((fact.kind ?? 'absent') === 'absent') {
      // A package's postinst may already run its own unit of this name (e.g. haproxy): ours must replace it.
      if (r.started && fact.active === 'active') want[1] = RESTART_RUNNING;
      return { action: 'create', details: want, ...(r.sensitive ? {} : { diff: contentDiff(`${UNIT_DIR}/${r.name}`, { content: '' }, r.content) }) };
    }
    const details: string[] = [];
    let diff: string | undefined;
    if (fact.sha256 !== ctx.contentSha256(r.content)) {
      details.push(r.sensitive ? 'unit file changed (sensitive)' : 'unit file changed');
      if (!r.sensitive) diff = contentDiff(`${UNIT_DIR}/${r.name}`, fact, r.content);
    }
    const enabled = fact.enabled === 'enabled';
    if (enabled !== r.enabled) details.push(`${fact.enabled || 'unknown'} → ${r.enabled ? 'enabled' : 'disabled'}`);
    const active = fact.active === 'active' || fact.active === 'reloading' || fact.active === 'activating';
    if (active !== r.started) details.push(`${fact.active || 'unknown'} → ${r.started ? 'active' : 'stopped'}`);
    return details.length ? { action: 'update', details, ...(diff ? { diff } : {}) } : undefined;
  },
  exists: (fact) => fact.kind === 'file',
  steps(c) {
    const r = c.resource;
    const path = `${UNIT_DIR}/${r.name}`;
    if (c.action === 'delete') {
      return [{ kind: 'sh', desc: `remove unit ${r.name}`, script: 'systemctl disable --now "$1" 2>/dev/null || true; rm -f -- "$2"; systemctl daemon-reload', args: [r.name, path] }];
    }
    if (c.action === 'restart' || c.action === 'reload') {
      return [{ kind: 'sh', desc: `${c.action} ${r.name}`, script: startScript(c.action === 'reload' ? 'reload' : 'restart'), args: [r.name] }];
    }
    const steps: Step[] = [
      writeStep(`write ${path}`, path, r.content, 'root', 'root', r.sensitive ? '0600' : '0644', verifyCheck(r.name)),
      { kind: 'sh', desc: `daemon-reload; ${r.enabled ? 'enable' : 'disable'} ${r.name}`, script: `systemctl daemon-reload && systemctl ${r.enabled ? 'enable' : 'disable'} --quiet "$1"`, args: [r.name] },
    ];
    const restart = c.details.includes(RESTART_RUNNING);
    steps.push(r.started
      ? { kind: 'sh', desc: `${restart ? 'restart' : 'start'} ${r.name}`, script: startScript(restart ? 'restart' : 'start'), args: [r.name] }
      : { kind: 'sh', desc: `stop ${r.name}`, script: 'systemctl stop "$1"', args: [r.name] });
    return steps;
  },
  fromManifest: (key) => ({ type: 'unit', id: makeId('unit', key), name: key, content: '', enabled: false, started: false, reload: false, sensitive: true }),
};
