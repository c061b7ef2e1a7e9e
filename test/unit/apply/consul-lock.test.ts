import { describe, expect, it } from 'vitest';
import { ConsulLock, parseLockEntry } from '../../../src/apply/consul-lock.js';
import type { Executor } from '../../../src/executors/types.js';
import { LockError } from '../../../src/errors.js';

const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('parseLockEntry (the answer of GET /v1/kv/rtctl/apply-lock)', () => {
  it('reads the holder from the base64 value, the session and the modify index', () => {
    const holder = { by: 'ci@runner', pid: 42, since: '2026-12-04T17:55:38.666Z', run: '2de1c733' };
    const e = parseLockEntry(JSON.stringify([{ Key: 'rtctl/apply-lock', Value: b64(JSON.stringify(holder)), Session: '0b8a1f0e-5c1d-4b8e-9d1a-3f2e4c5b6a7d', ModifyIndex: 812 }]));
    expect(e).toEqual({ holder, session: '0b8a1f0e-5c1d-4b8e-9d1a-3f2e4c5b6a7d', index: 812 });
  });

  it('keeps a session id that is not a UUID out (it goes into a shell command)', () => {
    const e = parseLockEntry(JSON.stringify([{ Value: b64('{"run":"x"}'), Session: '$(reboot)', ModifyIndex: 3 }]));
    expect(e.session).toBeUndefined();
    expect(e.holder.run).toBe('x');
  });

  it('an unreadable value still gives the index (no holder details); an unreadable answer is a LockError', () => {
    expect(parseLockEntry(JSON.stringify([{ Value: b64('not json'), ModifyIndex: 7 }]))).toEqual({ holder: {}, index: 7 });
    expect(() => parseLockEntry('<html>')).toThrow(LockError);
  });
});

describe('ConsulLock.acquire: what the server script answers', () => {
  const server = (stdout: string): Executor => ({
    host: 'h1',
    connect: async () => {},
    run: async () => ({ code: 0, stdout, stderr: '' }),
    runScript: async () => ({ code: 0, stdout, stderr: '' }),
    putFile: async () => {},
    getFile: async () => Buffer.from(''),
    close: async () => {},
  });
  const me = { by: 'me@here', pid: 1, since: '2026-12-04T00:00:00Z', run: 'aaaa0001' };

  it('a holder: LockError naming it and how to remove a dead one', async () => {
    await expect(ConsulLock.acquire([server('@busy {"by":"ci@runner","pid":7,"since":"2026-12-04T10:00:00Z","run":"ci000001"}\n')], me)).rejects.toThrow(
      'the platform is locked in Consul (rtctl/apply-lock) by ci@runner (pid 7, run ci000001) since 2026-12-04T10:00:00Z; it is released when that apply ends, or at most 60 s after it died; if it died, `rtctl unlock --cluster ci000001` removes it now',
    );
  });

  it('refused with nobody holding it (lock-delay outlasting the retries): a LockError, not a silent run without the lock', async () => {
    await expect(ConsulLock.acquire([server('@busy\n')], me)).rejects.toThrow('Consul refused the lock (rtctl/apply-lock) for 20 s though nobody holds it');
  });

  it('Consul not running yet: no cluster lock and no warning; a server that fails: a warning naming it', async () => {
    const warned: string[] = [];
    expect(await ConsulLock.acquire([server('@none\n')], me, (l) => warned.push(l))).toBeUndefined();
    expect(warned).toEqual([]);
    const failing: Executor = { ...server(''), run: async () => ({ code: 7, stdout: '', stderr: 'curl: (7) Failed to connect' }) };
    expect(await ConsulLock.acquire([failing], me, (l) => warned.push(l))).toBeUndefined();
    expect(warned).toEqual(['warning: no cluster-wide lock in Consul (h1: curl: (7) Failed to connect); relying on per-host locks']);
  });
});
