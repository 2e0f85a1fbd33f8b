/**
 * One acquire, end to end through BaseLock and the wait session, on a polling fake backend (and a
 * pushing one where the waiter matters): blocking and its deadline, the worst case
 * `timeout + operationTimeout`, the undo of a late or failed attempt, `retryAfter` and `cause`,
 * abort at every step, non-blocking, and the re-entrancy guard.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { LockManager } from '../../lib/core/manager.js';
import { messages } from '../../lib/core/messages.js';
import { DeadlineExceededError } from '../../lib/core/timing.js';
import { FAILURES_FOR_UNAVAILABLE } from '../../lib/core/wait-session.js';
import {
  DriverMissingError,
  LockAbortedError,
  LockBackendError,
  LockBusyError,
  LockError,
  LockTimeoutError,
} from '../../lib/core/errors/index.js';
import { registerFake } from './fake-backend.js';
import {
  advance,
  elapsed,
  flush,
  rejected,
  rejectionOf,
  sinceStart,
  useFakeClock,
  watch,
} from './helpers.js';

const poll = registerFake({ name: 'unitAcquirePoll' });
const push = registerFake({ name: 'unitAcquirePush', push: true });

useFakeClock();

let locks: LockManager;
let pushLocks: LockManager;

beforeEach(() => {
  poll.control.reset();
  push.control.reset();
  locks = new LockManager({ backend: 'unitAcquirePoll', retryInterval: 100 });
  pushLocks = new LockManager({ backend: 'unitAcquirePush', retryInterval: 100 });
});

/** When each acquire call of `control` was made, in fake ms since the test started. */
const attemptTimes = (control = poll.control) =>
  control.callsOf('acquire').map((call) => sinceStart(call.at));

describe('blocking acquire', () => {
  it('takes a free lock at once, in one attempt', async () => {
    const lock = locks.lock('free');
    const acquiring = watch(lock.acquire());
    await flush();
    expect(acquiring.state).toBe('fulfilled');
    expect(acquiring.value).toBe(true);
    expect(acquiring.at).toBe(0);
    expect(poll.control.calls.acquire).toBe(1);
    expect(lock.isAcquired).toBe(true);
    expect(poll.control.holder('free')).toBe(poll.control.callsOf('acquire')[0]?.token);
  });

  it('polls every retryInterval (with jitter) until the timeout, then rejects with LockTimeoutError', async () => {
    poll.control.holdElsewhere('busy');
    const lock = locks.lock('busy', { timeout: 1_000 });
    const acquiring = watch(lock.acquire());
    await advance(999);
    expect(acquiring.state).toBe('pending');
    await advance(1);
    const error = rejected(acquiring, LockTimeoutError);
    expect(acquiring.at).toBe(1_000);
    // Math.random() is 0.5: sleeps of 75 ms, the last one cut to the 25 ms left
    expect(attemptTimes()).toEqual([
      0, 75, 150, 225, 300, 375, 450, 525, 600, 675, 750, 825, 900, 975, 1_000,
    ]);
    expect(error.message).toBe(messages.timeout('busy', 1_000));
    expect(error.lockName).toBe('busy');
    expect(error.timeout).toBe(1_000);
    expect(error.cause).toBeUndefined();
    expect(error.retryAfter).toBeUndefined(); // no holder TTL reported: unknown
    expect(lock.isAcquired).toBe(false);
    expect(locks.held()).toEqual([]);
  });

  it('uses the timeout given to acquire() over the lock’s', async () => {
    poll.control.holdElsewhere('busy');
    const acquiring = watch(locks.lock('busy', { timeout: 5_000 }).acquire({ timeout: 200 }));
    await advance(200);
    expect(rejected(acquiring, LockTimeoutError).timeout).toBe(200);
    expect(acquiring.at).toBe(200);
  });

  it('makes exactly one attempt with timeout 0', async () => {
    poll.control.holdElsewhere('busy');
    const acquiring = watch(locks.lock('busy', { timeout: 0 }).acquire());
    await flush();
    expect(rejected(acquiring, LockTimeoutError).timeout).toBe(0);
    expect(poll.control.calls.acquire).toBe(1);
  });

  it('gets the lock on the attempt after the holder releases it', async () => {
    poll.control.holdElsewhere('busy');
    const acquiring = watch(locks.lock('busy').acquire());
    await advance(100);
    poll.control.drop('busy');
    await advance(49); // attempts at 0, 75; the next at 150
    expect(acquiring.state).toBe('pending');
    await advance(1);
    expect(acquiring.value).toBe(true);
    expect(acquiring.at).toBe(150);
    expect(poll.control.calls.acquire).toBe(3);
  });

  it('wakes just after the holder TTL the server reported runs out', async () => {
    poll.control.reportHolderTtl = true;
    poll.control.holdElsewhere('busy', 30);
    const acquiring = watch(locks.lock('busy', { retryInterval: 1_000 }).acquire());
    await advance(31);
    expect(acquiring.value).toBe(true);
    expect(acquiring.at).toBe(31);
    expect(attemptTimes()).toEqual([0, 31]);
  });

  describe('retryAfter of the LockTimeoutError', () => {
    const timeoutWith = async (facts: object, options: { expire?: number | null } = {}) => {
      Object.assign(poll.control.refusal, facts);
      poll.control.holdElsewhere('busy');
      const acquiring = watch(locks.lock('busy', { timeout: 300, ...options }).acquire());
      await advance(300);
      return rejected(acquiring, LockTimeoutError);
    };

    it('is the holder TTL of the last refusal', async () => {
      expect((await timeoutWith({ holderTtl: 4_321 })).retryAfter).toBe(4_321);
    });

    it('is undefined when the holder has no expiry (holderTtl -1)', async () => {
      expect((await timeoutWith({ holderTtl: -1 })).retryAfter).toBeUndefined();
    });

    it('is undefined when no TTL was reported, whatever the lock’s expire', async () => {
      expect((await timeoutWith({}, { expire: 7_000 })).retryAfter).toBeUndefined();
      poll.control.reset();
      expect((await timeoutWith({}, { expire: null })).retryAfter).toBeUndefined();
    });

    it('is undefined when the last attempt failed (no fresh TTL), never the expire', async () => {
      poll.control.refusal.holderTtl = 4_321;
      poll.control.holdElsewhere('busy');
      const acquiring = watch(locks.lock('busy', { timeout: 300, expire: 7_000 }).acquire());
      await advance(290);
      poll.control.failNext('acquire', 10);
      await advance(10);
      const error = rejected(acquiring, LockTimeoutError);
      expect(error.retryAfter).toBeUndefined();
      expect(error.cause).toBeInstanceOf(Error);
    });
  });

  describe('a server that cannot be reached: LockBackendError, not LockTimeoutError', () => {
    it('a wait in which the server never answered ends with LockBackendError, the last failure as cause', async () => {
      const failure = new Error('connection refused');
      poll.control.failNext('acquire', 100, { error: failure });
      const lock = locks.lock('down', { timeout: 300 });
      const acquiring = watch(lock.acquire());
      await advance(299);
      expect(acquiring.state).toBe('pending'); // it keeps trying until the timeout
      await advance(1);
      const error = rejected(acquiring, LockBackendError);
      expect(error).not.toBeInstanceOf(LockTimeoutError);
      expect(error.operation).toBe('acquire');
      expect(error.lockName).toBe('down');
      expect(error.cause).toBe(failure);
      expect(error.message).toBe(messages.backendError('down', 'acquire', failure));
      expect(attemptTimes()).toEqual([0, 75, 150, 225, 300]);
      expect(lock.isAcquired).toBe(false);
      expect(locks.held()).toEqual([]);
    });

    it('a single attempt (timeout 0) that fails is LockBackendError', async () => {
      poll.control.failNext('acquire', 1);
      const acquiring = watch(locks.lock('down', { timeout: 0 }).acquire());
      await flush();
      expect(rejected(acquiring, LockBackendError).operation).toBe('acquire');
      expect(poll.control.calls.acquire).toBe(1);
    });

    it(`"busy" answers, then the last ${FAILURES_FOR_UNAVAILABLE} attempts failed: LockBackendError`, async () => {
      poll.control.holdElsewhere('busy');
      const acquiring = watch(locks.lock('busy', { timeout: 300 }).acquire());
      await advance(200); // attempts at 0, 75, 150 were refused
      const failure = new Error('connection reset');
      poll.control.failNext('acquire', 100, { error: failure }); // 225, 300 fail
      await advance(100);
      const error = rejected(acquiring, LockBackendError);
      expect(error.cause).toBe(failure);
      expect(attemptTimes()).toEqual([0, 75, 150, 225, 300]);
    });

    it('"busy" answers, then only the very last attempt failed: LockTimeoutError, that failure as cause', async () => {
      poll.control.holdElsewhere('busy');
      const acquiring = watch(locks.lock('busy', { timeout: 300 }).acquire());
      await advance(250); // attempts at 0, 75, 150, 225 were refused
      const failure = new Error('one dropped reply');
      poll.control.failNext('acquire', 1, { error: failure }); // 300 fails
      await advance(50);
      const error = rejected(acquiring, LockTimeoutError);
      expect(error.cause).toBe(failure);
    });

    it('failures, then "busy" answers: LockTimeoutError without cause (the server is back)', async () => {
      poll.control.holdElsewhere('busy');
      poll.control.failNext('acquire', 2);
      const acquiring = watch(locks.lock('busy', { timeout: 300 }).acquire());
      await advance(300);
      const error = rejected(acquiring, LockTimeoutError);
      expect(poll.control.calls.acquire).toBe(5);
      expect(error.cause).toBeUndefined();
      expect('cause' in error).toBe(false);
    });

    it('a lock freed after failures is granted: a failure never hides a grant', async () => {
      poll.control.failNext('acquire', 3);
      const acquiring = watch(locks.lock('back', { timeout: 1_000 }).acquire());
      await advance(225);
      expect(acquiring.value).toBe(true);
      expect(poll.control.calls.acquire).toBe(4);
    });
  });

  it('ends by timeout + operationTimeout at worst: an attempt that hangs is given up', async () => {
    poll.control.holdElsewhere('busy');
    const lock = locks.lock('busy', { timeout: 1_000, operationTimeout: 500 });
    const acquiring = watch(lock.acquire());
    await advance(990);
    poll.control.latency.acquire = 10_000; // the last attempt, sent at 1000, hangs
    await advance(509);
    expect(acquiring.state).toBe('pending');
    await advance(1);
    // "busy" answers until then: one attempt that hung is no server down
    const error = rejected(acquiring, LockTimeoutError);
    expect(acquiring.at).toBe(1_500);
    expect(error.timeout).toBe(1_000);
    expect(error.cause).toBeInstanceOf(DeadlineExceededError);
    expect((error.cause as DeadlineExceededError).operation).toBe('acquire');
    expect((error.cause as DeadlineExceededError).deadline).toBe(500);
    expect(attemptTimes().at(-1)).toBe(1_000);
    // the hanging attempt is refused when it finally answers: nothing to undo
    await advance(10_000);
    expect(poll.control.calls.release).toBe(0);
    expect(poll.control.holder('busy')).toBe('someone-else');
  });

  it('undoes an abandoned attempt that the server applied: releases its token once it answers', async () => {
    // The first attempt takes the lock at once but its reply comes after 2010 ms.
    poll.control.delayNext('acquire', 2_010);
    const lock = locks.lock('late', { operationTimeout: 500 });
    const acquiring = watch(lock.acquire());
    await advance(2_009);
    expect(acquiring.state).toBe('pending');
    const [first] = poll.control.callsOf('acquire');
    expect(poll.control.holder('late')).toBe(first?.token); // the late attempt holds it
    expect(poll.control.calls.release).toBe(0);
    await advance(1); // its reply comes: undone
    expect(poll.control.callsOf('release')).toEqual([
      expect.objectContaining({ token: first?.token, held: { token: first?.token, grant: 1 } }),
    ]);
    expect(poll.control.holder('late')).toBeUndefined();
    await advance(65); // the next poll (attempts at 575 + 75 k) takes it
    expect(acquiring.value).toBe(true);
    expect(acquiring.at).toBe(2_075);
    const last = poll.control.callsOf('acquire').at(-1);
    expect(last?.token).not.toBe(first?.token);
    expect(poll.control.holder('late')).toBe(last?.token);
    expect(poll.control.calls.acquire).toBe(22); // 0, then 575 to 2075 every 75 ms
    expect(poll.control.calls.release).toBe(1);
  });

  it('undoes a failed attempt whose write may have been applied (a dropped reply)', async () => {
    poll.control.failNext('acquire', 1, { applied: true });
    const acquiring = watch(locks.lock('dropped', { timeout: 1_000 }).acquire());
    await flush();
    const [first] = poll.control.callsOf('acquire');
    expect(poll.control.callsOf('release')).toEqual([
      expect.objectContaining({ token: first?.token, held: undefined }),
    ]);
    await advance(75);
    expect(acquiring.value).toBe(true);
    expect(poll.control.holder('dropped')).toBe(poll.control.callsOf('acquire')[1]?.token);
  });

  it('does not retry when the driver is missing: DriverMissingError at once', async () => {
    poll.control.failNext('acquire', 1, {
      error: new DriverMissingError('unitAcquirePoll', 'fake-driver'),
    });
    const acquiring = watch(locks.lock('nodriver').acquire());
    await flush();
    const error = rejected(acquiring, DriverMissingError);
    expect(error.library).toBe('fake-driver');
    expect(acquiring.at).toBe(0);
    expect(poll.control.calls.acquire).toBe(1);
  });
});

describe('abort', () => {
  it('rejects at once, without an attempt, when the signal is already aborted', async () => {
    const reason = new Error('shutting down');
    const lock = pushLocks.lock('aborted');
    const error = await rejectionOf(lock.acquire({ signal: AbortSignal.abort(reason) }));
    expect(error).toBeInstanceOf(LockAbortedError);
    expect((error as LockAbortedError).message).toBe(messages.aborted('aborted'));
    expect((error as LockAbortedError).cause).toBe(reason);
    expect(push.control.calls.acquire).toBe(0);
    expect(push.control.sequence()).toEqual(['open', 'close']);
    expect(push.control.waiters[0]?.closedWith).toBe(false);
    expect(lock.isAcquired).toBe(false);
  });

  it('stops waiting for a hanging attempt at once, and undoes it when it answers', async () => {
    poll.control.latency.acquire = 1_000; // applied at once, answered at 1000
    const controller = new AbortController();
    const lock = locks.lock('slow');
    const acquiring = watch(lock.acquire({ signal: controller.signal }));
    await advance(200);
    const reason = new Error('user cancelled');
    controller.abort(reason);
    await flush();
    const error = rejected(acquiring, LockAbortedError);
    expect(acquiring.at).toBe(200);
    expect(error.cause).toBe(reason);
    expect(lock.isAcquired).toBe(false);
    expect(locks.held()).toEqual([]);
    const token = poll.control.callsOf('acquire')[0]?.token;
    expect(poll.control.holder('slow')).toBe(token);
    await advance(800);
    expect(poll.control.callsOf('release').map((c) => c.token)).toEqual([token]);
    expect(poll.control.holder('slow')).toBeUndefined();
  });

  it('stops a sleep between two attempts', async () => {
    poll.control.holdElsewhere('busy');
    const controller = new AbortController();
    const acquiring = watch(
      locks.lock('busy', { retryInterval: 1_000 }).acquire({ signal: controller.signal }),
    );
    await advance(300);
    controller.abort('enough');
    await flush();
    expect(rejected(acquiring, LockAbortedError).cause).toBe('enough');
    expect(acquiring.at).toBe(300);
    expect(poll.control.calls.acquire).toBe(1);
    await advance(5_000);
    expect(poll.control.calls.acquire).toBe(1);
  });

  it('stops a pushed wait and closes the waiter, not granted', async () => {
    push.control.holdElsewhere('busy');
    const controller = new AbortController();
    const acquiring = watch(pushLocks.lock('busy').acquire({ signal: controller.signal }));
    await advance(1_000); // waiting for a wake-up (fallback poll at 2000)
    expect(push.control.sequence()).toEqual(['open', 'acquire', 'listen']);
    controller.abort('stop');
    await flush();
    expect(rejected(acquiring, LockAbortedError).cause).toBe('stop');
    expect(acquiring.at).toBe(1_000);
    expect(push.control.sequence()).toEqual(['open', 'acquire', 'listen', 'close']);
    expect(push.control.waiters[0]?.closedWith).toBe(false);
  });

  it('stops waiting for listen() to answer', async () => {
    push.control.holdElsewhere('busy');
    push.control.listenSteps = ['hang'];
    const controller = new AbortController();
    const acquiring = watch(pushLocks.lock('busy').acquire({ signal: controller.signal }));
    await advance(100);
    controller.abort('stop');
    await flush();
    expect(rejected(acquiring, LockAbortedError).cause).toBe('stop');
    expect(acquiring.at).toBe(100);
    expect(push.control.calls.close).toBe(1);
    expect(push.control.waiters[0]?.closedWith).toBe(false);
  });
});

describe('non-blocking acquire', () => {
  it('resolves true on a free lock, in one attempt, without a waiter', async () => {
    const lock = pushLocks.lock('free');
    expect(await lock.acquire(false)).toBe(true);
    expect(push.control.calls.acquire).toBe(1);
    expect(push.control.calls.open).toBe(0);
    expect(push.control.callsOf('acquire')[0]?.waiter).toBeUndefined();
    expect(lock.isAcquired).toBe(true);
  });

  it('resolves false when the lock is taken, after one attempt and no sleep', async () => {
    push.control.holdElsewhere('busy');
    const acquiring = watch(pushLocks.lock('busy').acquire({ blocking: false }));
    await flush();
    expect(acquiring.value).toBe(false);
    expect(acquiring.at).toBe(0);
    expect(push.control.calls.acquire).toBe(1);
    expect(push.control.calls.open).toBe(0);
    expect(push.control.calls.listen).toBe(0);
  });

  it('reports when the lock should be free (LockBusyError.retryAfter)', async () => {
    poll.control.refusal.holderTtl = 1_234;
    poll.control.holdElsewhere('busy');
    const busy = await locks.lock('busy').acquireOrBusy(false);
    expect(busy).toBeInstanceOf(LockBusyError);
    expect((busy as LockBusyError).retryAfter).toBe(1_234);
  });

  it('rejects with LockBackendError when the backend throws, and undoes the attempt', async () => {
    const failure = new Error('ECONNRESET');
    poll.control.failNext('acquire', 1, { error: failure });
    const lock = locks.lock('down');
    const error = await rejectionOf(lock.acquire(false));
    expect(error).toBeInstanceOf(LockBackendError);
    expect((error as LockBackendError).operation).toBe('acquire');
    expect((error as LockBackendError).cause).toBe(failure);
    expect((error as LockBackendError).message).toBe(
      messages.backendError('down', 'acquire', failure),
    );
    expect(poll.control.calls.acquire).toBe(1);
    expect(poll.control.callsOf('release')).toEqual([
      expect.objectContaining({
        token: poll.control.callsOf('acquire')[0]?.token,
        held: undefined,
      }),
    ]);
    expect(lock.isAcquired).toBe(false);
  });

  it('rejects with LockBackendError (DeadlineExceededError) after operationTimeout', async () => {
    poll.control.latency.acquire = 3_000;
    const lock = locks.lock('slow', { operationTimeout: 400 });
    const acquiring = watch(lock.acquire(false));
    await advance(400);
    const error = rejected(acquiring, LockBackendError);
    expect(acquiring.at).toBe(400);
    expect(error.cause).toBeInstanceOf(DeadlineExceededError);
    await advance(2_600); // the attempt answers granted: undone
    expect(poll.control.callsOf('release').map((c) => c.token)).toEqual([
      poll.control.callsOf('acquire')[0]?.token,
    ]);
    expect(poll.control.holder('slow')).toBeUndefined();
    expect(lock.isAcquired).toBe(false);
  });

  it('lets DriverMissingError through unwrapped', async () => {
    const missing = new DriverMissingError('unitAcquirePoll', 'fake-driver');
    poll.control.failNext('acquire', 1, { error: missing });
    expect(await rejectionOf(locks.lock('nodriver').acquire(false))).toBe(missing);
  });
});

describe('re-entrancy guard', () => {
  it('refuses a second acquire() on a lock object while one is in progress', async () => {
    poll.control.holdElsewhere('busy');
    const lock = locks.lock('busy', { timeout: 500 });
    const first = watch(lock.acquire());
    await advance(100);
    const error = await rejectionOf(lock.acquire(false));
    expect(error).toBeInstanceOf(LockError);
    expect((error as Error).constructor).toBe(LockError);
    expect((error as Error).message).toBe(messages.acquireInProgress('busy'));
    expect(poll.control.calls.acquire).toBe(2); // the first one's two, none from the second
    await advance(400);
    expect(rejected(first, LockTimeoutError).timeout).toBe(500);
    // once the first ended, acquire() works again
    poll.control.drop('busy');
    expect(await lock.acquire(false)).toBe(true);
  });

  it('lets two lock objects of the same name acquire concurrently', async () => {
    const a = locks.lock('same');
    const b = locks.lock('same', { timeout: 200 });
    expect(await a.acquire()).toBe(true);
    const waiting = watch(b.acquire());
    await advance(100);
    await a.release();
    await advance(50);
    expect(waiting.value).toBe(true);
    expect(elapsed()).toBe(150);
  });
});

describe('using()', () => {
  it('acquires, runs the function with the lock, releases, and returns its result', async () => {
    const lock = locks.lock('work');
    const result = await lock.using(async (held) => {
      expect(held).toBe(lock);
      expect(held.isAcquired).toBe(true);
      return 42;
    });
    expect(result).toBe(42);
    expect(lock.isAcquired).toBe(false);
    expect(poll.control.calls.release).toBe(1);
    expect(poll.control.holder('work')).toBeUndefined();
  });

  it('releases when the function throws, and its error wins over a failed release', async () => {
    const lock = locks.lock('work');
    const failure = new Error('work failed');
    poll.control.failNext('release', 1);
    const error = await rejectionOf(
      lock.using(() => {
        throw failure;
      }),
    );
    expect(error).toBe(failure);
    expect(poll.control.calls.release).toBe(1);
  });
});
