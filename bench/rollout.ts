/**
 * bench/rollout: HTTP load through the load balancer for the whole duration of a rollout, then the count of
 * requests sent and failed and the rollout's duration. Bounded: at most --max-seconds and --max-requests, and
 * only to lab (198.18.0.0/15) or loopback addresses.
 *
 *   node dist/bench/rollout.js --url http://198.18.1.11/ [--concurrency 4] [--max-seconds 300] [--max-requests 200000] \
 *     -- bin/rtctl apply --auto-approve -f examples/services.platform.yaml
 *
 * Exit status: the rollout command's. The e2e suite (test/e2e/services.test.ts) uses `startLoad` directly.
 */
import { execa } from 'execa';
import { pathToFileURL } from 'node:url';

export interface LoadStats {
  sent: number;
  failed: number;
  /** First few failures, e.g. `503` or `fetch failed`. */
  samples: string[];
  /** Responses per `version` field of the body (the example service reports its version). */
  versions: Record<string, number>;
}

export interface LoadOptions {
  concurrency?: number;
  maxSeconds?: number;
  maxRequests?: number;
  timeoutMs?: number;
}

/** Only the lab's addresses or loopback: this tool never sends load anywhere else. */
export function allowedTarget(url: string): boolean {
  const host = new URL(url).hostname;
  if (host === 'localhost' || host === '[::1]' || /^127\./.test(host)) return true;
  const m = /^198\.(\d+)\.\d+\.\d+$/.exec(host);
  return !!m && (m[1] === '18' || m[1] === '19');
}

export function startLoad(url: string, opts: LoadOptions = {}): { stop(): Promise<LoadStats> } {
  if (!allowedTarget(url)) throw new Error(`refusing to send load to ${url}: only lab (198.18.0.0/15) or loopback addresses`);
  const stats: LoadStats = { sent: 0, failed: 0, samples: [], versions: {} };
  const deadline = Date.now() + (opts.maxSeconds ?? 300) * 1000;
  const maxRequests = opts.maxRequests ?? 200_000;
  let stopping = false;
  const fail = (why: string) => {
    stats.failed++;
    if (stats.samples.length < 10) stats.samples.push(why);
  };
  const worker = async () => {
    while (!stopping && Date.now() < deadline && stats.sent < maxRequests) {
      stats.sent++;
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(opts.timeoutMs ?? 5000) });
        const body = await r.text();
        if (r.status < 200 || r.status > 299) fail(`HTTP ${r.status}`);
        else {
          const v = /"version": *"([^"]+)"/.exec(body)?.[1] ?? '?';
          stats.versions[v] = (stats.versions[v] ?? 0) + 1;
        }
      } catch (e) {
        fail(e instanceof Error ? `${e.message}${e.cause instanceof Error ? `: ${e.cause.message}` : ''}` : String(e));
      }
    }
  };
  const workers = Array.from({ length: opts.concurrency ?? 4 }, worker);
  return {
    async stop() {
      stopping = true;
      await Promise.all(workers);
      return stats;
    },
  };
}

export function report(stats: LoadStats, seconds: number): string {
  return [
    `requests sent: ${stats.sent}`,
    `requests failed: ${stats.failed}${stats.samples.length ? ` (${[...new Set(stats.samples)].join('; ')})` : ''}`,
    `rollout duration: ${seconds.toFixed(1)} s`,
    `responses by version: ${Object.entries(stats.versions).map(([v, n]) => `${v}=${n}`).join(' ') || 'none'}`,
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const sep = argv.indexOf('--');
  const own = sep < 0 ? argv : argv.slice(0, sep);
  const cmd = sep < 0 ? [] : argv.slice(sep + 1);
  const opt = (name: string) => (own.includes(name) ? own[own.indexOf(name) + 1] : undefined);
  const url = opt('--url');
  if (!url || cmd.length === 0) {
    process.stderr.write('usage: rollout --url URL [--concurrency N] [--max-seconds S] [--max-requests N] -- COMMAND…\n');
    return 2;
  }
  const load = startLoad(url, {
    concurrency: Number(opt('--concurrency') ?? 4),
    maxSeconds: Number(opt('--max-seconds') ?? 300),
    maxRequests: Number(opt('--max-requests') ?? 200_000),
  });
  const t0 = performance.now();
  const r = await execa(cmd[0]!, cmd.slice(1), { reject: false, stdio: 'inherit' });
  const seconds = (performance.now() - t0) / 1000;
  // Keep the load on a moment after the rollout, so that instances put back last are exercised too.
  await new Promise((res) => setTimeout(res, 1000));
  const stats = await load.stop();
  process.stdout.write(`${report(stats, seconds)}\nrollout exit status: ${r.exitCode}\n`);
  return r.exitCode ?? 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (e) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
