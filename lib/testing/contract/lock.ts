/**
 * The lock contract: acquire, locked, release and keys; non-blocking and blocking acquires,
 * timeouts and abort signals; release refusals; using() and `await using`; one acquire at a time
 * per object; mutual exclusion among racing objects.
 */
import {
  type AcquireOptions,
  configure,
  LockAbortedError,
  LockError,
  LockReleaseError,
  LockTimeoutError,
  resetConfiguration,
} from '../../sherlock.js';
import { performance } from 'node:perf_hooks';
import { expect } from '../expect.js';
import { delay, rejectsWith, SLACK_MS, timed, uniqueName } from '../helpers.js';
import { type Runner, type SubjectInfo, useBackend } from '../subject.js';

/** When the holder releases in the blocking tests, and the least a waiter must have waited. */
const RELEASE_AFTER_MS = 300;
const MIN_WAITED_MS = 250;

export function lockContract(runner: Runner, fixture: SubjectInfo): void {
  const { describe, it, afterEach } = runner;
  afterEach(() => resetConfiguration());
  const backend = useBackend(runner, fixture);

  describe('acquire(), locked(), release() and key', () => {
    it('acquires a free lock, reports it held to everyone, and releases it', async () => {
      const name = uniqueName();
      const lock = backend.lock(name);
      expect(lock.name).toBe(name);
      expect(lock.isAcquired).toBe(false);
      expect(await lock.locked()).toBe(false);

      expect(await lock.acquire()).toBe(true);
      expect(lock.isAcquired).toBe(true);
      expect(await lock.locked()).toBe(true);
      expect(await backend.isLocked(name)).toBe(true);

      await lock.release();
      expect(lock.isAcquired).toBe(false);
      expect(await lock.locked()).toBe(false);
      expect(await backend.isLocked(name)).toBe(false);
    });

    it('can be acquired and released again and again by the same object', async () => {
      const name = uniqueName();
      const lock = backend.lock(name);
      for (let round = 0; round < 3; round++) {
        expect(await lock.acquire(false)).toBe(true);
        expect(await backend.isLocked(name)).toBe(true);
        await lock.release();
        expect(await backend.isLocked(name)).toBe(false);
      }
    });

    it('uses the plain name as key without a namespace', () => {
      const name = uniqueName();
      expect(backend.lock(name).key).toBe(name);
      expect(backend.lock(name, { namespace: null }).key).toBe(name);
    });

    it(`keys a namespaced lock as namespace${fixture.keySeparator}name, apart from the plain name`, async () => {
      const name = uniqueName();
      const namespaced = backend.lock(name, { namespace: 'ns' });
      expect(namespaced.key).toBe(`ns${fixture.keySeparator}${name}`);

      expect(await namespaced.acquire(false)).toBe(true);
      expect(await backend.isLocked(name, { namespace: 'ns' })).toBe(true);
      expect(await backend.isLocked(name, { namespace: 'other' })).toBe(false);
      const plain = backend.lock(name);
      expect(await plain.acquire(false)).toBe(true);
      await plain.release();
      await namespaced.release();
      expect(await backend.isLocked(name, { namespace: 'ns' })).toBe(false);
    });

    it('takes the namespace from configure() unless the lock sets its own (null included)', async () => {
      const name = uniqueName();
      const sep = fixture.keySeparator;
      configure({ namespace: 'configured' });
      const fromConfig = backend.lock(name);
      expect(fromConfig.key).toBe(`configured${sep}${name}`);
      expect(backend.lock(name, { namespace: 'mine' }).key).toBe(`mine${sep}${name}`);
      expect(backend.lock(name, { namespace: null }).key).toBe(name);

      expect(await fromConfig.acquire(false)).toBe(true);
      expect(await backend.isLocked(name, { namespace: 'configured' })).toBe(true);
      expect(await backend.isLocked(name, { namespace: null })).toBe(false);
      await fromConfig.release();
    });

    it('takes the other defaults from configure() too, and per-lock options win', async () => {
      const name = uniqueName();
      configure({ timeout: 300, retryInterval: 20 });
      const holder = await backend.hold(name);
      const configured = backend.lock(name);
      expect(configured.timeout).toBe(300);
      expect(backend.lock(name, { timeout: 1_234 }).timeout).toBe(1_234);

      const { error } = await rejectsWith(LockTimeoutError, () => configured.acquire());
      expect(error.timeout).toBe(300);
      expect(await holder.locked()).toBe(true);
    });
  });

  describe('non-blocking acquire', () => {
    const forms: [string, boolean | AcquireOptions][] = [
      ['acquire(false)', false],
      ['acquire({ blocking: false })', { blocking: false }],
    ];

    for (const [form, arg] of forms) {
      it(`${form} resolves false at once while another object holds the lock, true once it is free`, async () => {
        const name = uniqueName();
        const holder = await backend.hold(name);
        const lock = backend.lock(name, { timeout: 10_000 });

        // A blocking acquire would wait the whole 10 s timeout.
        const { value, ms } = await timed(() => lock.acquire(arg));
        expect(value).toBe(false);
        expect(ms).toBeLessThan(3_000);
        expect(lock.isAcquired).toBe(false);
        expect(await holder.locked()).toBe(true);

        await holder.release();
        expect(await lock.acquire(arg)).toBe(true);
        expect(lock.isAcquired).toBe(true);
        expect(await backend.isLocked(name)).toBe(true);
      });
    }
  });

  describe('blocking acquire', () => {
    it('waits while the lock is held and gets it after the holder releases', async () => {
      const name = uniqueName();
      const holder = await backend.hold(name);
      const releasing = delay(RELEASE_AFTER_MS).then(() => holder.release());
      const waiter = backend.lock(name, { retryInterval: 20 });

      const { value, ms } = await timed(() => waiter.acquire());
      await releasing;
      expect(value).toBe(true);
      expect(ms).toBeGreaterThanOrEqual(MIN_WAITED_MS);
      expect(ms).toBeLessThan(RELEASE_AFTER_MS + SLACK_MS);
      expect(waiter.isAcquired).toBe(true);
      expect(await backend.isLocked(name)).toBe(true);
    });

    it('rejects with LockTimeoutError once its timeout elapsed, leaving the holder alone', async () => {
      const name = uniqueName();
      const holder = await backend.hold(name);
      const waiter = backend.lock(name, { timeout: 500, retryInterval: 50 });

      const { error, ms } = await rejectsWith(LockTimeoutError, () => waiter.acquire());
      expect(error).toBeInstanceOf(LockError);
      expect(error.message).toBe(
        `Timeout elapsed after 500 ms while trying to acquire lock '${name}'`,
      );
      expect(error.lockName).toBe(name);
      expect(error.timeout).toBe(500);
      // Every attempt got an answer from the server: there is no driver error to report.
      expect(error.cause).toBeUndefined();
      expect(ms).toBeGreaterThanOrEqual(500);
      expect(ms).toBeLessThan(500 + SLACK_MS);
      expect(waiter.isAcquired).toBe(false);
      expect(await holder.locked()).toBe(true);
      await holder.release();
    });

    it("a per-call { timeout } shorter than the lock's wins", async () => {
      const name = uniqueName();
      await backend.hold(name);
      const waiter = backend.lock(name, { timeout: 10_000, retryInterval: 50 });

      const { error, ms } = await rejectsWith(LockTimeoutError, () =>
        waiter.acquire({ timeout: 300 }),
      );
      expect(error.timeout).toBe(300);
      expect(error.message).toBe(
        `Timeout elapsed after 300 ms while trying to acquire lock '${name}'`,
      );
      expect(ms).toBeGreaterThanOrEqual(300);
      expect(ms).toBeLessThan(300 + SLACK_MS);
    });

    it("a per-call { timeout } longer than the lock's wins", async () => {
      const name = uniqueName();
      const holder = await backend.hold(name);
      // The lock alone would give up after 100 ms, before the holder releases.
      const waiter = backend.lock(name, { timeout: 100, retryInterval: 20 });
      const releasing = delay(RELEASE_AFTER_MS).then(() => holder.release());

      const { value, ms } = await timed(() => waiter.acquire({ timeout: 10_000 }));
      await releasing;
      expect(value).toBe(true);
      expect(ms).toBeGreaterThanOrEqual(MIN_WAITED_MS);
      expect(waiter.isAcquired).toBe(true);
    });
  });

  describe('AbortSignal', () => {
    it('aborting a waiting acquire rejects it with LockAbortedError soon after', async () => {
      const name = uniqueName();
      const holder = await backend.hold(name);
      const waiter = backend.lock(name, { timeout: 10_000, retryInterval: 20 });
      const controller = new AbortController();
      const reason = new Error('caller gave up');

      const acquiring = rejectsWith(LockAbortedError, () =>
        waiter.acquire({ signal: controller.signal }),
      );
      await delay(200);
      const abortedAt = performance.now();
      controller.abort(reason);
      const { error } = await acquiring;
      const afterAbort = performance.now() - abortedAt;

      expect(error).toBeInstanceOf(LockError);
      expect(error.cause).toBe(reason);
      expect(error.lockName).toBe(name);
      expect(afterAbort).toBeLessThan(2_000); // far below the 10 s timeout
      expect(waiter.isAcquired).toBe(false);

      // The holder is unaffected, and once it releases, nobody holds the lock: the aborted
      // waiter did not keep trying in the background.
      expect(await holder.locked()).toBe(true);
      await holder.release();
      await delay(200);
      expect(await backend.isLocked(name)).toBe(false);
      expect(waiter.isAcquired).toBe(false);
    });

    it('an already-aborted signal rejects at once on a held lock', async () => {
      const name = uniqueName();
      const holder = await backend.hold(name);
      const waiter = backend.lock(name, { timeout: 10_000 });
      const reason = new Error('already aborted');

      const { error, ms } = await rejectsWith(LockAbortedError, () =>
        waiter.acquire({ signal: AbortSignal.abort(reason) }),
      );
      expect(error.cause).toBe(reason);
      expect(ms).toBeLessThan(2_000);
      expect(waiter.isAcquired).toBe(false);
      expect(await holder.locked()).toBe(true);
      await holder.release();
    });

    it('an already-aborted signal rejects on a free lock too, and takes nothing', async () => {
      const name = uniqueName();
      const lock = backend.lock(name);
      const reason = new Error('already aborted');

      const { error } = await rejectsWith(LockAbortedError, () =>
        lock.acquire({ signal: AbortSignal.abort(reason) }),
      );
      expect(error.cause).toBe(reason);
      expect(lock.isAcquired).toBe(false);
      expect(await backend.isLocked(name)).toBe(false);
    });
  });

  describe('release()', () => {
    it("by an object that never acquired is refused as 'not-acquired'", async () => {
      const name = uniqueName();
      const { error } = await rejectsWith(LockReleaseError, () => backend.lock(name).release());
      expect(error).toBeInstanceOf(LockError);
      expect(error.reason).toBe('not-acquired');
      expect(error.lockName).toBe(name);
    });

    it("twice: the second is refused as 'not-acquired'", async () => {
      const name = uniqueName();
      const lock = backend.lock(name);
      await lock.acquire();
      await lock.release();
      const { error } = await rejectsWith(LockReleaseError, () => lock.release());
      expect(error.reason).toBe('not-acquired');
      expect(await backend.isLocked(name)).toBe(false);
    });

    it('another object cannot release a lock it does not own', async () => {
      const name = uniqueName();
      const holder = await backend.hold(name);
      const intruder = backend.lock(name);

      const { error } = await rejectsWith(LockReleaseError, () => intruder.release());
      expect(error.reason).toBe('not-acquired');
      expect(await backend.isLocked(name)).toBe(true);
      expect(holder.isAcquired).toBe(true);
      await holder.release();
      expect(await backend.isLocked(name)).toBe(false);
    });

    it('consecutive holds cannot release each other', async () => {
      const name = uniqueName();
      const first = backend.lock(name);
      const second = backend.otherLock(name);

      await first.acquire();
      await first.release();
      await second.acquire();
      // The first object's hold is over: it cannot end the second one's.
      expect((await rejectsWith(LockReleaseError, () => first.release())).error.reason).toBe(
        'not-acquired',
      );
      expect(await backend.isLocked(name)).toBe(true);

      await second.release();
      await first.acquire();
      expect((await rejectsWith(LockReleaseError, () => second.release())).error.reason).toBe(
        'not-acquired',
      );
      expect(await backend.isLocked(name)).toBe(true);
      await first.release();
      expect(await backend.isLocked(name)).toBe(false);
    });
  });

  describe('using() and Symbol.asyncDispose', () => {
    it("returns fn's result, passes fn the lock object, and releases afterwards", async () => {
      const name = uniqueName();
      const lock = backend.lock(name);
      const result = await lock.using(async (held) => {
        expect(held).toBe(lock);
        expect(held.isAcquired).toBe(true);
        expect(await backend.isLocked(name)).toBe(true);
        return { answer: 42 };
      });
      expect(result).toEqual({ answer: 42 });
      expect(lock.isAcquired).toBe(false);
      expect(await lock.locked()).toBe(false);
    });

    it("releases when fn throws, and rethrows fn's very error", async () => {
      const name = uniqueName();
      const lock = backend.lock(name);
      const failure = new Error('fn failed');
      let sawHeld = false;

      const { error } = await rejectsWith(Error, () =>
        lock.using(async () => {
          sawHeld = await backend.isLocked(name);
          throw failure;
        }),
      );
      expect(error).toBe(failure);
      expect(sawHeld).toBe(true);
      expect(lock.isAcquired).toBe(false);
      expect(await lock.locked()).toBe(false);
    });

    it('rejects with LockTimeoutError without calling fn while another object holds the lock', async () => {
      const name = uniqueName();
      const holder = await backend.hold(name);
      const lock = backend.lock(name, { retryInterval: 20 });
      let called = false;

      const { error } = await rejectsWith(LockTimeoutError, () =>
        lock.using(
          () => {
            called = true;
          },
          { timeout: 300 },
        ),
      );
      expect(error.timeout).toBe(300);
      expect(called).toBe(false);
      expect(lock.isAcquired).toBe(false);
      expect(await holder.locked()).toBe(true);
    });

    it('[Symbol.asyncDispose]() releases a held lock', async () => {
      const name = uniqueName();
      const lock = backend.lock(name);
      await lock.acquire();
      await lock[Symbol.asyncDispose]();
      expect(lock.isAcquired).toBe(false);
      expect(await backend.isLocked(name)).toBe(false);
    });

    it('[Symbol.asyncDispose]() on a lock this object does not hold is a no-op', async () => {
      const name = uniqueName();
      const holder = await backend.hold(name);
      const lock = backend.lock(name);
      expect(await lock[Symbol.asyncDispose]()).toBeUndefined();
      expect(await holder.locked()).toBe(true);
      expect(holder.isAcquired).toBe(true);
    });

    it('`await using` releases the lock when the block exits, normally or by an exception', async () => {
      const name = uniqueName();
      const lock = backend.lock(name);
      {
        await using held = lock;
        expect(await held.acquire(false)).toBe(true);
        expect(await backend.isLocked(name)).toBe(true);
      }
      expect(lock.isAcquired).toBe(false);
      expect(await backend.isLocked(name)).toBe(false);

      const failure = new Error('block failed');
      const { error } = await rejectsWith(Error, async () => {
        await using held = lock;
        await held.acquire();
        throw failure;
      });
      expect(error).toBe(failure);
      expect(lock.isAcquired).toBe(false);
      expect(await backend.isLocked(name)).toBe(false);
    });
  });

  describe('one acquire at a time per lock object', () => {
    it('a second acquire() while one is waiting rejects with LockError; the first completes', async () => {
      const name = uniqueName();
      const holder = await backend.hold(name);
      const lock = backend.lock(name, { retryInterval: 20 });
      const first = lock.acquire({ timeout: 10_000 });

      for (const arg of [false, true, { timeout: 100 }] as const) {
        const { error } = await rejectsWith(LockError, () => lock.acquire(arg));
        expect(error.message).toContain('already in progress');
        expect(error.lockName).toBe(name);
      }
      await holder.release();
      expect(await first).toBe(true);
      expect(lock.isAcquired).toBe(true);
      expect(await backend.isLocked(name)).toBe(true);
    });

    it('two acquire() calls in the same tick on a free lock: the second rejects, the first gets it', async () => {
      const name = uniqueName();
      const lock = backend.lock(name);
      const first = lock.acquire(false);
      const { error } = await rejectsWith(LockError, () => lock.acquire(false));
      expect(error.message).toContain('already in progress');
      expect(await first).toBe(true);
      await lock.release();
      // The refused call left nothing behind: the object can acquire again.
      expect(await lock.acquire(false)).toBe(true);
    });
  });

  it('gives mutual exclusion to 20 lock objects racing for one name in this process', async () => {
    const name = uniqueName();
    const contenders = Array.from({ length: 20 }, (_, i) =>
      (i % 2 === 0 ? backend.lock : backend.otherLock)(name, {
        retryInterval: 10,
        timeout: 20_000,
      }),
    );
    let counter = 0;
    let inside = 0;
    let maxInside = 0;

    await Promise.all(
      contenders.map(async (lock) => {
        expect(await lock.acquire()).toBe(true);
        inside += 1;
        maxInside = Math.max(maxInside, inside);
        const read = counter;
        await delay(2); // a read-modify-write with an await in between
        counter = read + 1;
        inside -= 1;
        await lock.release();
      }),
    );
    expect(counter).toBe(contenders.length);
    expect(maxInside).toBe(1);
    expect(await backend.isLocked(name)).toBe(false);
  });
}
