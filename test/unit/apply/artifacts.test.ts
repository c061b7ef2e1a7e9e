/** The operator-side artifact cache, against a real HTTP server on loopback. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha } from '../helpers.js';

let server: Server;
let base: string;
let hits = 0;
let dir: string;
const body = 'artifact-bytes\n';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'rtctl-cache-'));
  process.env.RTCTL_CACHE = join(dir, 'cache');
  server = createServer((req, res) => {
    hits++;
    if (req.url === '/tool') res.end(body);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => {
  server.close();
  delete process.env.RTCTL_CACHE;
  rmSync(dir, { recursive: true, force: true });
});

describe('ensureArtifact', () => {
  it('fetches a URL once into the cache, verified by sha256', async () => {
    const { ensureArtifact } = await import('../../../src/apply/artifacts.js');
    const p = await ensureArtifact(`${base}/tool`, sha(body));
    expect(readFileSync(p, 'utf8')).toBe(body);
    expect(p).toBe(join(dir, 'cache', sha(body)));
    await ensureArtifact(`${base}/tool`, sha(body));
    expect(hits).toBe(1);
  });

  it('refuses content whose checksum does not match, and a missing URL', async () => {
    const { ensureArtifact } = await import('../../../src/apply/artifacts.js');
    await expect(ensureArtifact(`${base}/tool`, 'f'.repeat(64))).rejects.toThrow(`artifact ${base}/tool: checksum mismatch (expected ${'f'.repeat(64)}, got ${sha(body)})`);
    await expect(ensureArtifact(`${base}/nope`, 'e'.repeat(64))).rejects.toThrow(`artifact ${base}/nope: HTTP 404`);
  });

  it('copies a local path', async () => {
    const { ensureArtifact } = await import('../../../src/apply/artifacts.js');
    const f = join(dir, 'local');
    writeFileSync(f, 'local\n');
    expect(readFileSync(await ensureArtifact(f, sha('local\n')), 'utf8')).toBe('local\n');
  });

  it('checks a local file against its sha256 even when another file with that checksum is cached', async () => {
    const { ensureArtifact } = await import('../../../src/apply/artifacts.js');
    const other = join(dir, 'other');
    writeFileSync(other, 'something else\n');
    await expect(ensureArtifact(other, sha(body))).rejects.toThrow(`artifact ${other}: checksum mismatch (expected ${sha(body)}, got ${sha('something else\n')})`);
  });
});
