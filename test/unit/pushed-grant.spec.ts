/**
 * The short path of a grant pushed by a release (direct grant, `HandOff.takeGrant`): the sleeping
 * acquire resolves from the message with no attempt; its expiry counts from a conservative
 * instant; a give-up that races the grant still leaves the line ungranted (the backend passes
 * the lock on); a grant that comes during an attempt is taken by the next sleep; a plain wake-up
 * still makes an attempt.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { LockAbortedError } from '../../lib/core/errors/index.js';
import { LockManager } from '../../lib/core/manager.js';
import { registerFake } from './fake-backend.js';
import { now } from '../../lib/core/timing.js';
import { advance, flush, useFakeClock, watch } from './helpers.js';

const push = registerFake({ name: 'unitPushedGrant', push: true, takeGrant: true, fencing: true });
const control = push.control;

useFakeClock();

let locks: LockManager;

beforeEach(() => {
  control.reset();
  locks = new LockManager({ backend: 'unitPushedGrant', retryInterval: 100, timeout: 60_000 });
});

/** The real event loop's next turn (the granted waiter is closed by a `setImmediate`). */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('a grant pushed by a release', () => {
  it('resolves the sleeping acquire from the message: no attempt, its owner and fencing token, the waiter closed granted after', async () => {
    control.holdElsewhere('busy');
    const lock = locks.lock('busy');
    const acquiring = watch(lock.acquire());
    await flush();
    expect(control.sequence()).toEqual(['open', 'acquire', 'listen']);
    await advance(500);
    const [waiter] = control.waiters;
    if (!waiter) throw new Error('no waiter');
    const token = control.pushGrant(waiter, '41');
    await flush();
    expect(acquiring.value).toBe(true);
    expect(control.calls.acquire, 'no attempt after the grant').toBe(1);
    expect(lock.fencingToken).toBe('41');
    expect(control.holder('busy')).toBe(token);
    await nextTurn();
    expect(control.sequence()).toEqual(['open', 'acquire', 'listen', 'close']);
    expect(waiter.closedWith).toBe(true);
    await lock.release();
    expect(control.holder('busy'), 'released with the token it queued with').toBeUndefined();
  });

  it("counts its expiry from the message's arrival less the last attempt's round trip, never from before that attempt was sent", async () => {
    for (const [grantAt, lostAt] of [
      [500, 500 - 40 + 9_000], // the message, less the refusal's 40 ms round trip
      // The message came during that attempt (taken by the sleep after it): 30 - 40 would be
      // before the attempt was sent (at 0), which found another holder: from 0.
      [30, 9_000],
    ] as const) {
      control.reset();
      control.holdElsewhere('busy');
      control.delayNext('acquire', 40); // the refused attempt: sent at 0, answered at 40
      const lock = locks.lock('busy', { expire: 10_000 }); // lost 1 s before the expiry
      const acquiring = watch(lock.acquire());
      await advance(grantAt);
      const [waiter] = control.waiters;
      if (!waiter) throw new Error('no waiter');
      control.pushGrant(waiter, '7', 10_000);
      await advance(Math.max(0, 40 - grantAt));
      expect(acquiring.value).toBe(true);
      const signal = lock.signal;
      await advance(lostAt - Math.max(40, grantAt) - 1);
      expect(signal?.aborted, `grant at ${grantAt}: not lost yet`).toBe(false);
      await advance(1);
      expect(signal?.aborted, `grant at ${grantAt}: lost at ${lostAt}`).toBe(true);
    }
  });

  it('an abort in the same tick as the grant (either order) ends the acquire aborted and closes the waiter ungranted', async () => {
    for (const order of ['grant, then abort', 'abort, then grant'] as const) {
      control.reset();
      control.holdElsewhere('busy');
      const controller = new AbortController();
      const lock = locks.lock('busy');
      const acquiring = watch(lock.acquire({ signal: controller.signal }));
      await advance(300);
      const [waiter] = control.waiters;
      if (!waiter) throw new Error('no waiter');
      if (order === 'grant, then abort') {
        control.pushGrant(waiter, '9');
        controller.abort();
      } else {
        controller.abort();
        control.pushGrant(waiter, '9');
      }
      await flush();
      expect(acquiring.state, order).toBe('rejected');
      expect(acquiring.error, order).toBeInstanceOf(LockAbortedError);
      expect(lock.isAcquired, order).toBe(false);
      await nextTurn();
      // close(false): the backend gives what it was granted back (Redis: LEAVE passes it on).
      expect(waiter.closedWith, order).toBe(false);
      expect(control.calls.acquire, order).toBe(1);
    }
  });

  it('a grant that comes during an attempt is taken by the next sleep, with no further attempt', async () => {
    control.holdElsewhere('busy');
    control.delayNext('acquire', 0);
    const lock = locks.lock('busy');
    const acquiring = watch(lock.acquire());
    await flush();
    const [waiter] = control.waiters;
    if (!waiter) throw new Error('no waiter');
    // A wake-up (no grant) brings an attempt; the grant arrives while that attempt is out.
    control.delayNext('acquire', 50);
    waiter.wake();
    await advance(10);
    expect(control.calls.acquire).toBe(2);
    control.pushGrant(waiter, '12');
    await advance(40); // the attempt is refused (it ran before the grant)...
    expect(acquiring.value, '...and the grant is taken from the message').toBe(true);
    expect(control.calls.acquire).toBe(2);
    expect(lock.fencingToken).toBe('12');
  });

  it('a grant dated so long ago that its expiry has passed (a message read after a freeze) is not taken: an attempt follows, and queues again', async () => {
    control.holdElsewhere('busy');
    const lock = locks.lock('busy', { expire: 1_000 }); // lost 100 ms before the expiry
    const acquiring = watch(lock.acquire());
    await advance(500);
    const [waiter] = control.waiters;
    if (!waiter) throw new Error('no waiter');
    const before = control.calls.acquire;
    // Made 901 ms ago: 1 ms past its loss deadline. Another took the lock since.
    control.pushGrant(waiter, '5', 1_000, now() - 901);
    control.holdElsewhere('busy');
    await flush();
    expect(control.calls.acquire, 'an attempt instead').toBe(before + 1);
    expect(acquiring.state).toBe('pending');
    expect(lock.isAcquired).toBe(false);
    control.drop('busy');
    await flush();
    expect(acquiring.value).toBe(true);
    expect(lock.fencingToken).not.toBe('5');
    // 900 ms ago: 1 ms before its loss deadline, it is taken (lost at once after).
    await lock.release();
    control.holdElsewhere('busy');
    const again = watch(lock.acquire());
    await advance(500);
    const [next] = control.openWaiters();
    if (!next) throw new Error('no waiter');
    const calls = control.calls.acquire;
    control.pushGrant(next, '6', 1_000, now() - 899);
    await flush();
    expect(again.value).toBe(true);
    expect(control.calls.acquire, 'no attempt').toBe(calls);
    expect(lock.fencingToken).toBe('6');
  });

  it('a wake-up without a grant makes an attempt, as before', async () => {
    control.holdElsewhere('busy');
    const lock = locks.lock('busy');
    const acquiring = watch(lock.acquire());
    await advance(200);
    control.drop('busy'); // freed and woken, no grant: the attempt takes it
    await flush();
    expect(acquiring.value).toBe(true);
    expect(control.calls.acquire).toBe(2);
  });
});
