import { loadPlatform } from '../config/load.js';
import { ValidationError } from '../errors.js';

export async function validateCommand(opts: { file: string; json?: boolean }): Promise<void> {
  try {
    const p = loadPlatform(opts.file);
    const { desiredResources } = await import('../../recipes/index.js');
    const n = [...desiredResources(p).values()].reduce((a, r) => a + r.length, 0);
    if (opts.json) process.stdout.write(`${JSON.stringify({ valid: true, hosts: p.hosts.length, resources: n, diagnostics: [] })}\n`);
    else process.stdout.write(`${opts.file}: valid (${p.hosts.length} hosts, ${n} resources)\n`);
  } catch (err) {
    if (opts.json && err instanceof ValidationError) {
      process.stdout.write(`${JSON.stringify({ valid: false, diagnostics: err.diagnostics })}\n`);
    }
    throw err;
  }
}
