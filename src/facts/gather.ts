/** Runs the one facts probe per host, in parallel up to a bound. The only I/O in fact gathering. */
import type { Executor } from '../executors/types.js';
import { FactError, RtctlError } from '../errors.js';
import type { Resource } from '../model/resources.js';
import { buildProbe, parseProbe, type HostFacts, type ProbeOptions } from './probe.js';
import { mapLimit } from '../util/async.js';

export interface GatherResult {
  facts: Map<string, HostFacts>;
  /** host → one-line error (unreachable, refused, probe failed). */
  errors: Map<string, RtctlError>;
}

export async function gatherFacts(
  executors: Map<string, Executor>,
  resources: Map<string, Resource[]>,
  opts: ProbeOptions & { parallel: number; resolve?: (script: string) => string },
): Promise<GatherResult> {
  const facts = new Map<string, HostFacts>();
  const errors = new Map<string, RtctlError>();
  await mapLimit([...executors.entries()], opts.parallel, async ([host, ex]) => {
    try {
      await ex.connect();
      const script = buildProbe(resources.get(host) ?? [], opts);
      // Exec probes may hold secret references: resolved here, sent on stdin, never printed.
      const res = await ex.runScript(opts.resolve ? opts.resolve(script) : script);
      if (res.code !== 0) throw new FactError(`${host}: facts probe failed (exit ${res.code}): ${lastLine(res.stderr)}`);
      facts.set(host, parseProbe(host, res.stdout));
    } catch (err) {
      errors.set(host, err instanceof RtctlError ? err : new FactError(`${host}: ${(err as Error).message}`, { cause: err }));
    }
  });
  return { facts, errors };
}

export function lastLine(s: string): string {
  const lines = s.trim().split('\n').filter(Boolean);
  return lines.slice(-3).join(' | ') || '(no output)';
}
