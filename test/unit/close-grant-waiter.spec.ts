/**
 * Closing a Redis direct-grant waiter that was not granted (lib/backends/redis/direct-grant.ts):
 * it stops listening once its LEAVE ran; while LEAVE cannot run (rejected: the server away) it
 * keeps listening, and the next message to it runs LEAVE again; a LEAVE that cannot even be sent
 * (thrown: the lock's manager was closed) ends the listening at once, without throwing.
 */
import { describe, expect, it } from 'vitest';

import { closeGrantWaiter, openGrantWaiter } from '../../lib/backends/redis/direct-grant.js';

function listening() {
  const waiter = openGrantWaiter(() => undefined);
  const left: string[] = [];
  waiter.entry = 'p chan id. token 1000';
  waiter.token = 'token';
  waiter.leave = () => left.push('unsubscribed');
  return { waiter, left };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('closeGrantWaiter', () => {
  it('LEAVE ran: stops listening', async () => {
    const { waiter, left } = listening();
    const calls: string[] = [];
    closeGrantWaiter(waiter, false, async (entry, token) => calls.push(`${entry}|${token}`));
    await settle();
    expect(calls).toEqual(['p chan id. token 1000|token']);
    expect(left).toEqual(['unsubscribed']);
    expect(waiter.closed).toBe(true);
    expect(waiter.passOn).toBeUndefined();
  });

  it('LEAVE rejected: keeps listening; the next message runs it again, and then it stops', async () => {
    const { waiter, left } = listening();
    let fail = true;
    let calls = 0;
    closeGrantWaiter(waiter, false, async () => {
      calls++;
      if (fail) throw new Error('Connection is closed.');
    });
    await settle();
    expect(left, 'still listening').toEqual([]);
    expect(waiter.passOn).toBeTypeOf('function');
    fail = false;
    waiter.passOn?.();
    await settle();
    expect(calls).toBe(2);
    expect(left).toEqual(['unsubscribed']);
    expect(waiter.passOn).toBeUndefined();
  });

  it('LEAVE thrown (the manager closed): stops listening at once, nothing thrown', () => {
    const { waiter, left } = listening();
    expect(() =>
      closeGrantWaiter(waiter, false, () => {
        throw new Error('This LockManager (backend redis) was closed');
      }),
    ).not.toThrow();
    expect(left).toEqual(['unsubscribed']);
    expect(waiter.passOn).toBeUndefined();
  });

  it('granted, or never in line: no LEAVE, stops listening', async () => {
    for (const [granted, entry] of [
      [true, 'p chan id. token 1000'],
      [false, undefined],
    ] as const) {
      const { waiter, left } = listening();
      waiter.entry = entry;
      let calls = 0;
      closeGrantWaiter(waiter, granted, async () => calls++);
      await settle();
      expect(calls).toBe(0);
      expect(left).toEqual(['unsubscribed']);
    }
  });
});
