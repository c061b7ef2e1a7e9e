/**
 * Host-side bookkeeping scripts: the ownership manifest, the audit log and the apply lock. Commands are data;
 * the applier runs them.
 */
import type { ManifestEntry, LockInfo } from '../facts/probe.js';
import { AUDIT_LOG, LOCK_DIR, MANIFEST, PENDING, STATE_DIR } from '../facts/probe.js';

export function manifestText(entries: readonly ManifestEntry[]): string {
  const lines = [...new Set(entries.map((e) => `${e.type}\t${e.key}`))].sort();
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** Replace the manifest atomically with stdin. */
export const WRITE_MANIFEST = `set -eu; umask 077; mkdir -p ${STATE_DIR}; chmod 0700 ${STATE_DIR}; cat > ${MANIFEST}.tmp; mv -f ${MANIFEST}.tmp ${MANIFEST}`;

/** Replace the list of owed restarts with stdin (one unit id a line; empty removes the file). */
export const WRITE_PENDING = `set -eu; umask 077; mkdir -p ${STATE_DIR}; cat > ${PENDING}.tmp; if [ -s ${PENDING}.tmp ]; then mv -f ${PENDING}.tmp ${PENDING}; else rm -f ${PENDING}.tmp ${PENDING}; fi`;

/** Append stdin (one JSON line) to the audit log. */
export const APPEND_AUDIT = `set -eu; mkdir -p "$(dirname ${AUDIT_LOG})"; touch ${AUDIT_LOG}; chmod 0640 ${AUDIT_LOG}; cat >> ${AUDIT_LOG}`;

/** Release the lock only if this run holds it ($1 = run id). */
export const RELEASE_LOCK = `if grep -q "\\"run\\":\\"$1\\"" ${LOCK_DIR}/info 2>/dev/null; then rm -rf ${LOCK_DIR}; fi`;

/** Remove the lock whoever holds it (`rtctl unlock`). Prints the holder it removed. */
export const FORCE_UNLOCK = `if [ -d ${LOCK_DIR} ]; then cat ${LOCK_DIR}/info 2>/dev/null; echo; rm -rf ${LOCK_DIR}; fi`;

export interface AuditRecord {
  time: string;
  by: string;
  run: string;
  plan: string;
  result: 'ok' | 'failed' | 'interrupted';
  changes: number;
  done: number;
  failed?: string;
}

export function describeLock(host: string, l: LockInfo): string {
  return `${host} is locked by ${l.by} (pid ${l.pid}, run ${l.run}) since ${l.since}; if that run is gone, remove the lock with: rtctl unlock ${host}`;
}
