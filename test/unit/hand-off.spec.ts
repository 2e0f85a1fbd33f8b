/**
 * The hand-off waiter of a blocking acquire on a pushing backend: opened before the first attempt,
 * listening after each refusal, woken by a release, closed exactly once with the right flag;
 * discarded and opened afresh after a failed attempt; given up for polling when listening fails.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { LockTimeoutError } from '../../lib/core/errors/index.js';
import { LockManager } from '../../lib/core/manager.js';
import { registerFake } from './fake-backend.js';
import { advance, flush, rejected, sinceStart, useFakeClock, watch } from './helpers.js';

const push = registerFake({ name: 'unitHandOff', push: true });
const control = push.control;

useFakeClock();

let locks: LockManager;

beforeEach(() => {
  control.reset();
  locks = new LockManager({ backend: 'unitHandOff', retryInterval: 100, timeout: 10_000 });
});

const attemptTimes = () => control.callsOf('acquire').map((call) => sinceStart(call.at));
const attemptWaiters = () => control.callsOf('acquire').map((call) => call.waiter?.id);

describe('hand-off waiter', () => {
  it('opens before the first attempt, listens after a refusal, and closes granted when woken', async () => {
    control.holdElsewhere('busy');
    const acquiring = watch(locks.lock('busy').acquire());
    await flush();
    expect(control.sequence()).toEqual(['open', 'acquire', 'listen']);
    const [waiter] = control.waiters;
    expect(control.callsOf('acquire')[0]?.waiter).toBe(waiter);
    expect(control.callsOf('listen')[0]?.waiter).toBe(waiter);
    await advance(300);
    expect(control.calls.acquire).toBe(1); // no polling while pushed
    control.drop('busy'); // the release wakes the waiter
    await flush();
    expect(acquiring.value).toBe(true);
    expect(acquiring.at).toBe(300);
    expect(attemptTimes()).toEqual([0, 300]);
    expect(attemptWaiters()).toEqual([1, 1]);
    expect(control.sequence()).toEqual(['open', 'acquire', 'listen', 'acquire', 'close']);
    expect(control.calls.open).toBe(1);
    expect(control.calls.close).toBe(1);
    expect(waiter?.closedWith).toBe(true);
  });

  it('closes granted when the first attempt succeeds, without listening', async () => {
    expect(await locks.lock('free').acquire()).toBe(true);
    expect(control.sequence()).toEqual(['open', 'acquire', 'close']);
    expect(control.waiters[0]?.closedWith).toBe(true);
  });

  it('attempts again at once when listen() resolves false', async () => {
    control.holdElsewhere('busy');
    control.listenSteps = [false];
    const acquiring = watch(locks.lock('busy').acquire());
    await flush();
    expect(control.sequence()).toEqual(['open', 'acquire', 'listen', 'acquire', 'listen']);
    expect(attemptTimes()).toEqual([0, 0]);
    await advance(1_999);
    expect(control.calls.acquire).toBe(2);
    await advance(1); // the fallback poll
    expect(attemptTimes()).toEqual([0, 0, 2_000]);
    expect(acquiring.state).toBe('pending');
  });

  it('polls at the fallback interval, longer further back in line', async () => {
    control.holdElsewhere('busy');
    control.refusal.position = 2;
    watch(locks.lock('busy', { timeout: 120_000 }).acquire());
    await advance(16_000);
    expect(attemptTimes()).toEqual([0, 8_000, 16_000]); // 2000 × 2^2
    control.refusal.position = 9;
    await advance(54_000);
    // the attempt at 24000 is told place 9: 30 s at most
    expect(attemptTimes()).toEqual([0, 8_000, 16_000, 24_000, 54_000]);
    control.refusal.position = 0;
    await advance(16_000);
    // the attempt at 84000 is told it is next: back to 2 s
    expect(attemptTimes()).toEqual([0, 8_000, 16_000, 24_000, 54_000, 84_000, 86_000]);
    expect(control.calls.listen).toBe(7);
  });

  it('wakes after the holder TTL even without a wake-up', async () => {
    control.holdElsewhere('busy', 500);
    control.reportHolderTtl = true;
    control.wakeOnRelease = false;
    const acquiring = watch(locks.lock('busy').acquire());
    await advance(501);
    expect(acquiring.value).toBe(true);
    expect(attemptTimes()).toEqual([0, 501]);
  });

  it('counts the holder TTL and renewWithin from the attempt, not from when listen() answered', async () => {
    control.holdElsewhere('busy');
    control.refusal = { holderTtl: 500 };
    control.latency.listen = 300;
    watch(locks.lock('busy').acquire());
    await advance(501);
    expect(attemptTimes()).toEqual([0, 501]); // slept 201 ms after listening for 300
    control.refusal = { renewWithin: 400 }; // told at the attempt at 1002 (501 + 300 + 201)
    await advance(1_200); // listening until 1302, then renews by 1002 + 400
    expect(attemptTimes()).toEqual([0, 501, 1_002, 1_402]);
  });

  it('renews its place in line within renewWithin', async () => {
    control.holdElsewhere('busy');
    control.refusal.renewWithin = 700;
    watch(locks.lock('busy', { timeout: 2_000 }).acquire());
    await advance(1_400);
    expect(attemptTimes()).toEqual([0, 700, 1_400]);
  });

  it('keeps a wake-up that comes during an attempt: the next sleep returns at once', async () => {
    control.holdElsewhere('busy');
    control.delayNext('acquire', 100);
    watch(locks.lock('busy').acquire());
    await advance(50);
    expect(control.wake('busy')).toBe(1);
    await advance(50);
    expect(attemptTimes()).toEqual([0, 100]);
    await advance(1_999);
    expect(attemptTimes()).toEqual([0, 100]); // then waits again (fallback at 2100)
  });

  it('polls at retryInterval from then on when listen() rejects', async () => {
    control.holdElsewhere('busy');
    control.listenSteps = [new Error('SUBSCRIBE refused')];
    const acquiring = watch(locks.lock('busy', { timeout: 300 }).acquire());
    await flush();
    expect(control.sequence()).toEqual(['open', 'acquire', 'listen', 'close']);
    expect(control.waiters[0]?.closedWith).toBe(false);
    expect(control.wake()).toBe(0);
    await advance(300);
    rejected(acquiring, LockTimeoutError);
    expect(attemptTimes()).toEqual([0, 75, 150, 225, 300]);
    expect(attemptWaiters()).toEqual([1, undefined, undefined, undefined, undefined]);
    expect(control.calls.listen).toBe(1);
    expect(control.calls.open).toBe(1);
    expect(control.calls.close).toBe(1);
  });

  it('polls when listen() does not answer within operationTimeout', async () => {
    control.holdElsewhere('busy');
    control.listenSteps = ['hang'];
    const acquiring = watch(locks.lock('busy', { operationTimeout: 400 }).acquire());
    await advance(399);
    expect(control.calls.close).toBe(0);
    await advance(1);
    expect(control.callsOf('close').map((c) => [sinceStart(c.at), c.granted])).toEqual([
      [400, false],
    ]);
    await advance(75);
    expect(attemptTimes()).toEqual([0, 475]);
    expect(attemptWaiters()).toEqual([1, undefined]);
    control.drop('busy');
    await advance(75);
    expect(acquiring.value).toBe(true);
    expect(control.calls.close).toBe(1); // not closed again when granted
  });

  it('bounds listen() by the time left until the timeout', async () => {
    control.holdElsewhere('busy');
    control.listenSteps = ['hang'];
    const lock = locks.lock('busy', { timeout: 200, operationTimeout: 5_000 });
    const acquiring = watch(lock.acquire());
    await advance(199);
    expect(control.calls.close).toBe(0);
    await advance(1);
    expect(control.callsOf('close').map((c) => [sinceStart(c.at), c.granted])).toEqual([
      [200, false],
    ]);
    await advance(1); // one last attempt (see the next test for when), then the timeout
    expect(rejected(acquiring, LockTimeoutError).timeout).toBe(200);
    expect(control.calls.acquire).toBe(2);
    expect(attemptTimes()[1]).toBeLessThanOrEqual(201);
  });

  // Regression: when listen() used up the time left, the session slept `sleep(0)` (a 1 ms timer),
  // so the acquire ended 1 ms after the documented worst case `timeout + operationTimeout`.
  it('ends by timeout + operationTimeout even when listen() used up the time', async () => {
    control.holdElsewhere('busy');
    control.listenSteps = ['hang'];
    const lock = locks.lock('busy', { timeout: 200, operationTimeout: 5_000 });
    const acquiring = watch(lock.acquire());
    await advance(100);
    control.latency.acquire = 60_000; // the last attempt, sent at 200, hangs
    await advance(5_100);
    expect(rejected(acquiring, LockTimeoutError).timeout).toBe(200);
    expect(acquiring.at).toBe(5_200);
    expect(attemptTimes()).toEqual([0, 200]);
  });

  it('closes the waiter once, not granted, on timeout', async () => {
    control.holdElsewhere('busy');
    const acquiring = watch(locks.lock('busy', { timeout: 5_000 }).acquire());
    await advance(5_000);
    rejected(acquiring, LockTimeoutError);
    expect(attemptTimes()).toEqual([0, 2_000, 4_000, 5_000]);
    expect(control.calls.open).toBe(1);
    expect(control.callsOf('close').map((c) => c.granted)).toEqual([false]);
    expect(control.openWaiters()).toEqual([]);
  });

  it('discards the waiter after a failed attempt and queues afresh with a new one', async () => {
    control.holdElsewhere('busy');
    control.failNext('acquire', 1);
    const acquiring = watch(locks.lock('busy').acquire());
    await flush();
    const [first, second] = control.waiters;
    expect(control.waiters).toHaveLength(2);
    expect(first?.closedWith).toBe(false);
    expect(second?.closedWith).toBeUndefined();
    expect(control.calls.listen).toBe(0); // no listening after a failed attempt
    expect(control.sequence().filter((p) => p !== 'release')).toEqual([
      'open',
      'acquire',
      'close',
      'open',
    ]);
    // not listening yet: polls at retryInterval, with the new waiter
    await advance(75);
    expect(attemptTimes()).toEqual([0, 75]);
    expect(attemptWaiters()).toEqual([first?.id, second?.id]);
    expect(control.callsOf('listen').map((c) => c.waiter)).toEqual([second]);
    control.drop('busy');
    await flush();
    expect(acquiring.value).toBe(true);
    expect(control.callsOf('close').map((c) => [c.waiter?.id, c.granted])).toEqual([
      [first?.id, false],
      [second?.id, true],
    ]);
  });

  it('discards the waiter after an attempt that hung, too', async () => {
    control.holdElsewhere('busy');
    control.delayNext('acquire', 1_000);
    watch(locks.lock('busy', { operationTimeout: 300 }).acquire());
    await advance(300);
    expect(control.waiters.map((w) => w.closedWith)).toEqual([false, undefined]);
    await advance(75);
    expect(attemptWaiters()).toEqual([1, 2]);
  });

  it('polls when open() throws, and never calls close()', async () => {
    control.holdElsewhere('busy');
    control.openError = new Error('no hand-off today');
    const acquiring = watch(locks.lock('busy', { timeout: 150 }).acquire());
    await advance(150);
    rejected(acquiring, LockTimeoutError);
    expect(control.calls.open).toBe(1);
    expect(attemptTimes()).toEqual([0, 75, 150]);
    expect(attemptWaiters()).toEqual([undefined, undefined, undefined]);
    expect(control.calls.listen).toBe(0);
    expect(control.calls.close).toBe(0);
  });
});

describe('hand-off waiter opened after the first refusal (openAfterRefusal)', () => {
  const lazy = registerFake({ name: 'unitHandOffLazy', push: true, openAfterRefusal: true });
  const lazyControl = lazy.control;
  let lazyLocks: LockManager;
  beforeEach(() => {
    lazyControl.reset();
    lazyLocks = new LockManager({
      backend: 'unitHandOffLazy',
      retryInterval: 100,
      timeout: 10_000,
    });
  });

  it('an uncontended blocking acquire opens no waiter at all', async () => {
    expect(await lazyLocks.lock('free').acquire()).toBe(true);
    expect(lazyControl.sequence()).toEqual(['acquire']);
    expect(lazyControl.callsOf('acquire')[0]?.waiter).toBeUndefined();
  });

  it('a refused first attempt (no waiter) opens one, listens, and goes on with it', async () => {
    lazyControl.holdElsewhere('busy');
    const acquiring = watch(lazyLocks.lock('busy').acquire());
    await flush();
    expect(lazyControl.sequence()).toEqual(['acquire', 'open', 'listen']);
    const [waiter] = lazyControl.waiters;
    lazyControl.drop('busy');
    await flush();
    expect(acquiring.value).toBe(true);
    expect(lazyControl.callsOf('acquire').map((call) => call.waiter)).toEqual([undefined, waiter]);
    expect(lazyControl.sequence()).toEqual(['acquire', 'open', 'listen', 'acquire', 'close']);
    expect(waiter?.closedWith).toBe(true);
  });

  it('a failed first attempt opens one too (nothing to discard), and a timeout closes it', async () => {
    lazyControl.holdElsewhere('busy');
    lazyControl.failNext('acquire', 1);
    const acquiring = watch(lazyLocks.lock('busy').acquire({ timeout: 1_000 }));
    await flush();
    expect(lazyControl.waiters).toHaveLength(1);
    expect(lazyControl.calls.close).toBe(0);
    await advance(3_000);
    rejected(acquiring, LockTimeoutError);
    expect(lazyControl.calls.open).toBe(1);
    expect(lazyControl.callsOf('close').map((c) => c.granted)).toEqual([false]);
    expect(lazyControl.openWaiters()).toEqual([]);
  });

  it('a non-blocking acquire never opens one', async () => {
    lazyControl.holdElsewhere('busy');
    expect(await lazyLocks.lock('busy').acquire(false)).toBe(false);
    expect(lazyControl.calls.open).toBe(0);
  });
});
