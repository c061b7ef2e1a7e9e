/**
 * The operator-side artifact cache: each artifact is fetched once (URL or local path) into
 * ~/.cache/rtctl/artifacts/<sha256>, verified, and uploaded from there. Hosts need no internet.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplyError } from '../errors.js';

export function cacheDir(): string {
  return process.env.RTCTL_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'rtctl', 'artifacts');
}

async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const inflight = new Map<string, Promise<string>>();

/** Local path of the verified artifact, fetching it into the cache on first use. */
export function ensureArtifact(source: string, sha256: string): Promise<string> {
  const key = `${sha256} ${source}`;
  let p = inflight.get(key);
  if (!p) {
    p = fetchIntoCache(source, sha256);
    inflight.set(key, p);
    p.catch(() => inflight.delete(key));
  }
  return p;
}

async function fetchIntoCache(source: string, sha256: string): Promise<string> {
  const dir = cacheDir();
  const dest = join(dir, sha256);
  // A local file is checked on every run (cheap), so a wrong sha256 can't pick up another cached artifact.
  if (!/^https?:\/\//.test(source)) {
    const local = source.startsWith('file://') ? fileURLToPath(source) : source;
    const got = await fileSha256(local).catch((err: NodeJS.ErrnoException) => {
      throw new ApplyError(`artifact ${source}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
    });
    if (got !== sha256) throw new ApplyError(`artifact ${source}: checksum mismatch (expected ${sha256}, got ${got})`);
  }
  if (existsSync(dest) && (await fileSha256(dest)) === sha256) return dest;
  await mkdir(dir, { recursive: true });
  const tmp = `${dest}.${process.pid}.tmp`;
  try {
    if (/^https?:\/\//.test(source)) {
      const res = await fetch(source);
      if (!res.ok) throw new ApplyError(`artifact ${source}: HTTP ${res.status}`);
      await writeFile(tmp, Buffer.from(await res.arrayBuffer()));
    } else {
      await copyFile(source.startsWith('file://') ? fileURLToPath(source) : source, tmp);
    }
    const got = await fileSha256(tmp);
    if (got !== sha256) throw new ApplyError(`artifact ${source}: checksum mismatch (expected ${sha256}, got ${got})`);
    await rename(tmp, dest);
    return dest;
  } catch (err) {
    await rm(tmp, { force: true });
    if (err instanceof ApplyError) throw err;
    throw new ApplyError(`artifact ${source}: ${(err as Error).message}`);
  }
}
