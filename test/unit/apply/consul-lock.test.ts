import { describe, expect, it } from 'vitest';
import { parseLockEntry } from '../../../src/apply/consul-lock.js';
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
