/**
 * A holding: the loss signal (aborted `lossMargin` before the counted expiry unless a renewal
 * confirms the lock again), `autoExtend` renewal, the 'lost' event of the lock's manager (and of
 * the default manager's `lockEvents`), the expiry capabilities that shorten the counted lifetime,
 * fencing tokens, and `extend()`.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BaseLock } from '../../lib/core/base-lock.js';
import { configure, resetConfiguration } from '../../lib/core/configuration.js';
import {
  LockError,
  LockLostError,
  LockNotHeldError,
  LockBackendError,
} from '../../lib/core/errors/index.js';
import { lockEvents, type LockLostEvent } from '../../lib/core/events.js';
import { lossMargin } from '../../lib/core/hold.js';
import { LockManager } from '../../lib/core/manager.js';
import { messages } from '../../lib/core/messages.js';
import { registerFake } from './fake-backend.js';
import { advance, elapsed, rejectionOf, sinceStart, useFakeClock, watch } from './helpers.js';

const fake = registerFake({ name: 'unitHold', fencing: true });
/** Counts whole seconds, and frees a lock up to 1 s early (Memcached-like). */
const seconds = registerFake({
  name: 'unitHoldSeconds',
  expiry: { granularity: 1_000, minimum: 1_000, earlyBy: 1_000 },
});
/** Counts whole seconds, never early (Etcd-like). */
const coarse = registerFake({ name: 'unitHoldCoarse', expiry: { granularity: 1_000 } });
const noExtend = registerFake({ name: 'unitHoldNoExtend', extend: false });
const control = fake.control;

useFakeClock();

let locks: LockManager;
let lost: LockLostEvent[];
let globalLost: LockLostEvent[];
const onGlobalLost = (event: LockLostEvent) => globalLost.push(event);

beforeEach(() => {
  for (const f of [fake, seconds, coarse, noExtend]) f.control.reset();
  locks = new LockManager({ backend: 'unitHold' });
  lost = [];
  globalLost = [];
  locks.on('lost', (event) => lost.push(event));
  lockEvents.on('lost', onGlobalLost);
});

afterEach(() => {
  lockEvents.off('lost', onGlobalLost);
  resetConfiguration();
});

const reasonOf = (lock: BaseLock): LockLostError => {
  expect(lock.signal.aborted).toBe(true);
  expect(lock.signal.reason).toBeInstanceOf(LockLostError);
  return lock.signal.reason as LockLostError;
};
const extendTimes = () => control.callsOf('extend').map((call) => sinceStart(call.at));

describe('lossMargin', () => {
  it('is a tenth of the TTL, at most 1 s', () => {
    expect(lossMargin(2_000)).toBe(200);
    expect(lossMargin(10_000)).toBe(1_000);
    expect(lossMargin(60_000)).toBe(1_000);
    expect(lossMargin(5)).toBe(0.5);
  });
});

describe('loss signal', () => {
  it('aborts lossMargin before expire when nothing renews the lock', async () => {
    const lock = locks.lock('job', { expire: 10_000 });
    await lock.acquire();
    const { signal } = lock;
    await advance(8_999);
    expect(signal.aborted).toBe(false);
    expect(lost).toEqual([]);
    await advance(1);
    const reason = reasonOf(lock);
    expect(reason.reason).toBe('unconfirmed');
    expect(reason.lockName).toBe('job');
    expect(reason.message).toBe(messages.lost('job', 'unconfirmed'));
    expect(signal.reason).toBe(reason);
    expect(lost).toEqual([
      expect.objectContaining({ lock, name: 'job', key: 'job', error: reason }),
    ]);
    expect(globalLost).toEqual([]); // a LockManager's events are its own
    await advance(60_000);
    expect(lost).toHaveLength(1);
  });

  it('counts from when the attempt was sent, not when it answered', async () => {
    control.latency.acquire = 500;
    const lock = locks.lock('job', { expire: 10_000 });
    const acquiring = watch(lock.acquire());
    await advance(500);
    expect(acquiring.value).toBe(true);
    await advance(8_499);
    expect(lock.signal.aborted).toBe(false);
    await advance(1);
    expect(elapsed()).toBe(9_000);
    expect(reasonOf(lock).reason).toBe('unconfirmed');
  });

  it('counts from an earlier `since` the backend reports (a place in line renewed before)', async () => {
    control.sinceBefore = 3_000;
    const lock = locks.lock('job', { expire: 10_000 });
    await lock.acquire();
    await advance(5_999);
    expect(lock.signal.aborted).toBe(false);
    await advance(1);
    expect(reasonOf(lock).reason).toBe('unconfirmed');
  });

  it('uses a margin of a tenth of a short expire', async () => {
    const lock = locks.lock('short', { expire: 2_000 });
    await lock.acquire();
    await advance(1_799);
    expect(lock.signal.aborted).toBe(false);
    await advance(1);
    expect(lock.signal.aborted).toBe(true);
  });

  it('never aborts for a lock without expiry', async () => {
    const lock = locks.lock('forever', { expire: null });
    await lock.acquire();
    await advance(10_000_000);
    expect(lock.signal.aborted).toBe(false);
    expect(lost).toEqual([]);
  });

  it('stops when the lock is released', async () => {
    const lock = locks.lock('job', { expire: 10_000 });
    await lock.acquire();
    const { signal } = lock;
    await advance(5_000);
    await lock.release();
    await advance(60_000);
    expect(signal.aborted).toBe(false);
    expect(lost).toEqual([]);
  });

  // Regression: a new holding on the same object (its key vanished at the server) left the old
  // holding's loss timer running, which emitted a spurious 'lost'.
  it('reports no loss of a holding replaced by a new acquire on the same object', async () => {
    const lock = locks.lock('job', { expire: 10_000 });
    await lock.acquire();
    await advance(1_000);
    control.drop('job'); // e.g. deleted by an operator, or lost in a failover
    expect(await lock.acquire(false)).toBe(true);
    await advance(8_999); // the old holding would have been lost at 9000, the new one at 10000
    expect(lost).toEqual([]);
    expect(lock.signal.aborted).toBe(false);
  });

  it('is an aborted signal (LockError, not a loss) when the lock is not held', () => {
    const lock = locks.lock('idle');
    expect(lock.signal.aborted).toBe(true);
    expect(lock.signal.reason).toBeInstanceOf(LockError);
    expect(lock.signal.reason).not.toBeInstanceOf(LockLostError);
    expect((lock.signal.reason as Error).message).toBe(messages.notHeldSignal('idle'));
  });

  it('emits on lockEvents for a lock of the default manager', async () => {
    configure({ backend: 'unitHold' });
    const LockClass = fake.definition.lockClass;
    const lock = new LockClass('global', { expire: 1_000 }) as BaseLock;
    await lock.acquire();
    await advance(900);
    expect(globalLost).toEqual([
      expect.objectContaining({ lock, name: 'global', key: 'global', error: lock.signal.reason }),
    ]);
    expect(lost).toEqual([]);
  });
});

describe('extend()', () => {
  it('confirms the lock again: the signal then counts from the extend', async () => {
    const lock = locks.lock('job', { expire: 10_000 });
    await lock.acquire();
    await advance(5_000);
    await lock.extend();
    expect(control.callsOf('extend')).toEqual([
      expect.objectContaining({ ttl: 10_000, token: control.holder('job') }),
    ]);
    await advance(8_999);
    expect(lock.signal.aborted).toBe(false);
    await advance(1);
    expect(elapsed()).toBe(14_000);
    expect(lock.signal.aborted).toBe(true);
  });

  it('counts from when the extend was sent, not when it answered', async () => {
    const lock = locks.lock('job', { expire: 10_000 });
    await lock.acquire();
    await advance(5_000);
    control.latency.extend = 500;
    const extending = watch(lock.extend());
    await advance(500);
    expect(extending.state).toBe('fulfilled');
    await advance(8_499);
    expect(lock.signal.aborted).toBe(false);
    await advance(1);
    expect(elapsed()).toBe(14_000);
    expect(lock.signal.aborted).toBe(true);
  });

  it('takes another TTL, and hands back what the acquire reported', async () => {
    const lock = locks.lock('job', { expire: 10_000 });
    await lock.acquire();
    await lock.extend(20_000);
    const [call] = control.callsOf('extend');
    expect(call?.ttl).toBe(20_000);
    expect(call?.held).toEqual({ token: call?.token, grant: 1 });
    await advance(18_999);
    expect(lock.signal.aborted).toBe(false);
    await advance(1);
    expect(lock.signal.aborted).toBe(true);
  });

  it('rejects with LockNotHeldError (not-owned) and aborts the signal (taken) when the lock was taken', async () => {
    const lock = locks.lock('job', { expire: 10_000 });
    await lock.acquire();
    control.holdElsewhere('job');
    const error = await rejectionOf(lock.extend());
    expect(error).toBeInstanceOf(LockNotHeldError);
    expect((error as LockNotHeldError).reason).toBe('not-owned');
    expect((error as LockNotHeldError).operation).toBe('extend');
    expect(reasonOf(lock).reason).toBe('taken');
    expect(lost.map((e) => e.error.reason)).toEqual(['taken']);
  });

  it('wraps a failure in LockBackendError and leaves the signal alone', async () => {
    const lock = locks.lock('job', { expire: 10_000 });
    await lock.acquire();
    control.failNext('extend');
    const error = await rejectionOf(lock.extend());
    expect(error).toBeInstanceOf(LockBackendError);
    expect((error as LockBackendError).operation).toBe('extend');
    expect(lock.signal.aborted).toBe(false);
  });

  it('checks its argument', async () => {
    const lock = locks.lock('job', { expire: null });
    await lock.acquire();
    const missing = await rejectionOf(lock.extend());
    expect(missing).toBeInstanceOf(TypeError);
    expect((missing as Error).message).toContain("Invalid option 'ms': got undefined");
    const zero = await rejectionOf(lock.extend(0));
    expect(zero).toBeInstanceOf(RangeError);
    expect((zero as Error).message).toBe(
      messages.invalidOption('ms', 0, 'a finite number of milliseconds >= 1'),
    );
    expect(control.calls.extend).toBe(0);
  });

  it('is refused with LockError on a backend that cannot extend', async () => {
    const lock = new LockManager({ backend: 'unitHoldNoExtend' }).lock('job');
    await lock.acquire();
    const error = await rejectionOf(lock.extend(1_000));
    expect((error as Error).constructor).toBe(LockError);
    expect((error as Error).message).toBe(messages.cannotExtend('unitHoldNoExtend'));
  });
});

describe('autoExtend', () => {
  it('renews every expire / 3 with autoExtend true, and the lock is never lost', async () => {
    const lock = locks.lock('job', { expire: 9_000, autoExtend: true });
    expect(lock.renewEvery).toBe(3_000);
    await lock.acquire();
    const token = control.holder('job');
    await advance(30_000);
    expect(extendTimes()).toEqual([
      3_000, 6_000, 9_000, 12_000, 15_000, 18_000, 21_000, 24_000, 27_000, 30_000,
    ]);
    expect(control.callsOf('extend').every((c) => c.ttl === 9_000 && c.token === token)).toBe(true);
    expect(lock.signal.aborted).toBe(false);
    expect(lost).toEqual([]);
    await lock.release();
    await advance(30_000);
    expect(control.calls.extend).toBe(10); // stopped by the release
  });

  it('renews at the interval given', async () => {
    const lock = locks.lock('job', { expire: 10_000, autoExtend: 1_000 });
    await lock.acquire();
    await advance(5_000);
    expect(extendTimes()).toEqual([1_000, 2_000, 3_000, 4_000, 5_000]);
  });

  it('retries a failed renewal at the next interval; none succeeding, aborts (unconfirmed)', async () => {
    const lock = locks.lock('job', { expire: 9_000, autoExtend: true });
    await lock.acquire();
    control.failNext('extend', 100);
    await advance(8_099);
    expect(extendTimes()).toEqual([3_000, 6_000]);
    expect(lock.signal.aborted).toBe(false);
    await advance(1);
    expect(reasonOf(lock).reason).toBe('unconfirmed');
    expect(lost.map((e) => e.error.reason)).toEqual(['unconfirmed']);
    await advance(30_000);
    expect(control.calls.extend).toBe(2); // no renewal once lost
  });

  it('recovers when a renewal succeeds after failures', async () => {
    const lock = locks.lock('job', { expire: 9_000, autoExtend: true });
    await lock.acquire();
    control.failNext('extend', 1);
    await advance(6_000); // failed at 3000, renewed at 6000: lost at 6000 + 8100 at the earliest
    await advance(20_000);
    expect(lock.signal.aborted).toBe(false);
    expect(control.calls.extend).toBe(8);
  });

  it('aborts (taken) and emits lost on its manager only when a renewal finds another owner', async () => {
    const lock = locks.lock('job', { expire: 9_000, autoExtend: true });
    await lock.acquire();
    await advance(2_000);
    control.holdElsewhere('job');
    await advance(999);
    expect(lock.signal.aborted).toBe(false);
    await advance(1);
    const reason = reasonOf(lock);
    expect(reason.reason).toBe('taken');
    expect(reason.message).toBe(messages.lost('job', 'taken'));
    expect(lost).toEqual([
      expect.objectContaining({ lock, name: 'job', key: 'job', error: reason }),
    ]);
    expect(globalLost).toEqual([]);
    await advance(30_000);
    expect(control.calls.extend).toBe(1);
    expect(lost).toHaveLength(1);
    // release() then says so, and forgets the holding
    const error = await rejectionOf(lock.release());
    expect((error as LockNotHeldError).reason).toBe('not-owned');
    expect(lock.isAcquired).toBe(false);
    expect(locks.held()).toEqual([]);
  });

  it('does not count a renewal that finds the lock deleted by a release under way as a loss', async () => {
    const lock = locks.lock('job', { expire: 9_000, autoExtend: true });
    await lock.acquire();
    const { signal } = lock;
    await advance(2_950);
    control.latency.release = 100; // the key is deleted now, the reply comes at 3050
    const releasing = watch(lock.release());
    await advance(50); // the renewal at 3000 finds the key gone
    expect(control.calls.extend).toBe(1);
    await advance(50);
    expect(releasing.state).toBe('fulfilled');
    expect(signal.aborted).toBe(false);
    expect(lost).toEqual([]);
  });

  it('is refused (RangeError) on a backend that cannot extend, and without expire', () => {
    const noExtendLocks = new LockManager({ backend: 'unitHoldNoExtend' });
    expect(() => noExtendLocks.lock('job', { autoExtend: true })).toThrow(
      new RangeError(messages.autoExtendWithoutExtend('unitHoldNoExtend')),
    );
    expect(() => locks.lock('job', { expire: null, autoExtend: true })).toThrow(RangeError);
    expect(() => locks.lock('job', { expire: 10_000, autoExtend: 5_001 })).toThrow(
      /Invalid option 'autoExtend': got 5001, expected a renewal interval of at most expire \/ 2 \(5000 ms\)/,
    );
  });
});

describe('expiry capabilities shorten the counted lifetime', () => {
  it('counts a lock freed up to earlyBy early, in whole units, as living that much less', async () => {
    const lock = new LockManager({ backend: 'unitHoldSeconds' }).lock('job', { expire: 2_500 });
    await lock.acquire();
    // ceil(2500 / 1000) × 1000 − 1000 = 2000 ms surely kept: aborts at 2000 − 200
    await advance(1_799);
    expect(lock.signal.aborted).toBe(false);
    await advance(1);
    expect(reasonOf(lock).reason).toBe('unconfirmed');
  });

  it('counts an extend the same way', async () => {
    const lock = new LockManager({ backend: 'unitHoldSeconds' }).lock('job', { expire: 60_000 });
    await lock.acquire();
    await advance(1_000);
    await lock.extend(5_000); // 4000 surely kept: aborts at 1000 + 4000 − 400
    await advance(3_599);
    expect(lock.signal.aborted).toBe(false);
    await advance(1);
    expect(lock.signal.aborted).toBe(true);
  });

  it('counts no longer than asked when the server rounds up', async () => {
    const lock = new LockManager({ backend: 'unitHoldCoarse' }).lock('job', { expire: 2_500 });
    await lock.acquire();
    await advance(2_249); // min(2500, 3000) = 2500: aborts at 2500 − 250
    expect(lock.signal.aborted).toBe(false);
    await advance(1);
    expect(lock.signal.aborted).toBe(true);
  });

  it('counts nothing for the shortest expire of a server that frees up to a unit early', async () => {
    // min 1000, earlyBy 1000: the server may free it at once, so the signal says so at once
    const manager = new LockManager({ backend: 'unitHoldSeconds' });
    const events: LockLostEvent[] = [];
    manager.on('lost', (event) => events.push(event));
    const lock = manager.lock('job', { expire: 1_000 });
    await lock.acquire();
    await advance(0);
    expect(reasonOf(lock).reason).toBe('unconfirmed');
    expect(events).toHaveLength(1);
  });

  it('refuses an expire below the backend minimum', () => {
    const manager = new LockManager({ backend: 'unitHoldSeconds' });
    expect(() => manager.lock('job', { expire: 999 })).toThrow(
      new RangeError(messages.expireTooShort('expire', 'unitHoldSeconds', 999, 1_000, true, '')),
    );
  });
});

describe('fencing tokens', () => {
  it('are the acquire’s, cleared on release, increasing across holdings', async () => {
    const lock = locks.lock('fenced');
    expect(lock.fencingToken).toBeUndefined();
    await lock.acquire();
    expect(lock.fencingToken).toBe('1');
    await lock.release();
    expect(lock.fencingToken).toBeUndefined();
    await lock.acquire();
    expect(lock.fencingToken).toBe('2');
  });

  it('are undefined on a backend that issues none', async () => {
    const lock = new LockManager({ backend: 'unitHoldCoarse' }).lock('plain');
    await lock.acquire();
    expect(lock.isAcquired).toBe(true);
    expect(lock.fencingToken).toBeUndefined();
  });
});

describe('the fake clock', () => {
  it('drives performance.now(), the core’s clock', async () => {
    const before = performance.now();
    await advance(1_234);
    expect(performance.now() - before).toBe(1_234);
    expect(vi.isFakeTimers()).toBe(true);
  });
});
