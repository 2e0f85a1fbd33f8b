/**
 * A grant pushed by a message and dated by the server's clock (lib/core/dated-grant.ts, used by
 * the postgres backend): when it was made at the earliest in this process's clock, and whether it
 * is taken or dropped as expired.
 */
import { describe, expect, it } from 'vitest';

import { grantOf, noteServerTime, type Queued, takeGrant } from '../../lib/core/dated-grant.js';
import { now } from '../../lib/core/timing.js';
import { useFakeClock } from './helpers.js';

describe('a dated grant', () => {
  useFakeClock();

  it("counts from the server's time of the grant against an attempt's, never after the arrival; an older releaser's message from the arrival", () => {
    const queued: Queued = { sentAt: 1_000, serverMs: 5_000_000 };
    // Granted 300 ms after the attempt ran, by the server's clock; read 10 s later (frozen).
    expect(grantOf('42 5000300', queued, 11_300)).toEqual({ fencingToken: '42', at: 1_300 });
    // Read at once: the arrival is earlier than the estimate (the attempt's trip took a while).
    expect(grantOf('42 5000300', queued, 1_250)).toEqual({ fencingToken: '42', at: 1_250 });
    expect(grantOf('42', queued, 11_300), 'the older form').toEqual({
      fencingToken: '42',
      at: 11_300,
    });
    expect(grantOf('42 5000300', undefined, 11_300), 'no attempt dated').toEqual({
      fencingToken: '42',
      at: 11_300,
    });
    expect(grantOf('42 x', queued, 11_300).at, 'not a number').toBe(11_300);
  });

  it("keeps an attempt's server time given as a number or a decimal string, nothing else", () => {
    const waiter: { queued?: Queued } = {};
    noteServerTime(waiter, 10, null);
    expect(waiter.queued).toBeUndefined();
    noteServerTime(waiter, 10, '1733000000123');
    expect(waiter.queued).toEqual({ sentAt: 10, serverMs: 1_733_000_000_123 });
    noteServerTime(waiter, 20, 1_733_000_000_456);
    expect(waiter.queued).toEqual({ sentAt: 20, serverMs: 1_733_000_000_456 });
  });

  it('is taken (once) until its expiry less the loss margin has passed, then dropped', () => {
    const target = { expire: 1_000 }; // margin: 100 ms
    const t = now();
    const fresh = { grant: { fencingToken: '7', at: t - 899 }, token: 'mine' };
    expect(takeGrant(fresh, target)).toEqual({
      granted: true,
      fencingToken: '7',
      since: t - 899,
      ownerToken: 'mine',
    });
    expect(fresh.grant, 'taken once').toBeUndefined();
    expect(takeGrant(fresh, target)).toBeUndefined();
    const stale = { grant: { fencingToken: '8', at: t - 900 }, token: 'mine' };
    expect(takeGrant(stale, target)).toBeUndefined();
    expect(stale.grant, 'dropped').toBeUndefined();
    const forever = { grant: { fencingToken: '9', at: t - 1e9 }, token: 'mine' };
    expect(takeGrant(forever, { expire: null })?.fencingToken, 'no expiry').toBe('9');
  });
});
