/**
 * A Redis line with many dead waiters at its head (a process SIGKILLed while many of its acquires
 * waited leaves its entries behind, on a channel nobody listens to): a release skips at most 10
 * of them per grant loop, then wakes the next live waiter, whose attempt goes on through the line
 * (scripts.ts, `wakeFunction`). Without that wake-up the lock stayed free with live waiters in
 * line until their next fallback poll (tens of seconds here). For the lock, the semaphore and the
 * read-write lock, each with its own grant loop. On a real server of its own.
 */
import { RedisLock } from 'nestjs-sherlock';
import { describe, it, type TestContext } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { now } from '../support/helpers.js';
import { redisOfItsOwn } from '../support/redis-own.js';

/**
 * The holder's expiry: a waiter far back in line sleeps until its fallback poll (a kept place:
 * 5 min at place 3 and on; a semaphore's or read-write lock's: 30 s at place 4 and on, ±10 %),
 * bounded by this TTL: without a wake-up it would not attempt again for ≥ 27 s.
 */
const HOLDER_EXPIRE = 30_000;
/** Far below those 27 s, far above a wake-up and two attempts on a loaded machine. */
const WOKEN_WITHIN = 10_000;
/** Never polls by retryInterval; outlasts the fallback poll, so a failure is a late grant. */
const WAITING = { retryInterval: 60_000, timeout: 60_000 };

describe('redis: dead waiters at the head of a line do not stall it (its own server)', () => {
  const redis = redisOfItsOwn();

  const setUp = (onTestFinished: TestContext['onTestFinished']) => {
    const made = redis.setUp(onTestFinished, { expire: HOLDER_EXPIRE });
    const { inspector, queued } = made;
    /** Puts `count` dead entries (`entry(i)`) at the head of the line `key`. */
    const deadAhead = async (key: string, count: number, entry: (i: number) => string) => {
      for (let i = 0; i < count; i++) await inspector.zadd(key, i, entry(i));
      await inspector.pexpire(key, 120_000);
    };
    /**
     * Starts `acquire` (a waiter), waits until it is in line `key` behind `ahead` entries, and
     * returns its outcome: the ms from `since()` to its grant, or the error.
     */
    const waiter = async (key: string, ahead: number, acquire: () => Promise<boolean>) => {
      let since = 0;
      const outcome = acquire().then(
        (ok) => ({ ok, after: now() - since }),
        (err: unknown) => ({ ok: false, after: now() - since, err }),
      );
      await queued(key, ahead + 1, 'queued');
      return {
        outcome,
        release: async (release: () => Promise<unknown>) => {
          since = now();
          await release();
        },
      };
    };
    return { ...made, deadAhead, waiter };
  };

  it('a lock: 12 dead waiters ahead, the release wakes the live one behind them, which takes the lock at once', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, deadAhead, waiter } = setUp(onTestFinished);
    const name = uniqueName('dead-line');
    const holder = new RedisLock(name, { client: client(), expire: HOLDER_EXPIRE });
    expect(await holder.acquire(false)).toBe(true);
    await deadAhead(holder.queueKey, 12, (i) => `p sherlock:wake:dead-${i} d${i} dead-${i} 30000`);
    const live = new RedisLock(name, { client: client(), ...WAITING });
    const { outcome, release } = await waiter(holder.queueKey, 12, () => live.acquire());

    await release(() => holder.release());
    const { ok, after } = await Promise.race([
      outcome,
      new Promise<{ ok: boolean; after: number }>((resolve) =>
        setTimeout(() => resolve({ ok: false, after: Infinity }), WOKEN_WITHIN).unref(),
      ),
    ]);
    expect(after, 'granted at once after the release, not at its fallback poll').toBeLessThan(
      WOKEN_WITHIN,
    );
    expect(ok).toBe(true);
    expect(live.isAcquired).toBe(true);
    expect(await inspector.exists(holder.queueKey), 'the dead entries are gone').toBe(0);
    await live.release();
  });

  for (const kind of ['semaphore', 'read-write lock'] as const) {
    it(`a ${kind}: 25 dead waiters ahead (more than a grant loop and a wake-up's 10), the release wakes the live one behind them`, async ({
      expect,
      onTestFinished,
    }) => {
      const { manager, inspector, deadAhead, waiter } = setUp(onTestFinished);
      const [m1, m2] = [manager(), manager()];
      const name = uniqueName('dead-line');
      const dead = 25;
      let key: string;
      let holding: { release(): Promise<unknown> };
      let acquire: () => Promise<boolean>;
      let isAcquired: () => boolean;
      let releaseLive: () => Promise<unknown>;
      if (kind === 'semaphore') {
        const holder = m1.semaphore(name, 1);
        expect(await holder.acquire(false)).toBe(true);
        const [permits] = await inspector.keys(`*sem:*${name}`);
        key = (permits ?? '').replace('sem:{', 'semq:{');
        await deadAhead(key, dead, (i) => `p sherlock:wake:dead-${i} d${i} dead-${i} 30000 1`);
        const live = m2.semaphore(name, 1, WAITING);
        [holding, acquire] = [holder, () => live.acquire()];
        [isAcquired, releaseLive] = [() => live.isAcquired, () => live.release()];
      } else {
        const holder = m1.readWrite(name).write;
        expect(await holder.acquire(false)).toBe(true);
        const [writer] = await inspector.keys(`*rww:*${name}`);
        key = (writer ?? '').replace('rww:{', 'rwq:{');
        await deadAhead(key, dead, (i) => `w p sherlock:wake:dead-${i} d${i} dead-${i} 30000`);
        const live = m2.readWrite(name, WAITING).read;
        [holding, acquire] = [holder, () => live.acquire()];
        [isAcquired, releaseLive] = [() => live.isAcquired, () => live.release()];
      }
      expect(key).toContain(name);
      const { outcome, release } = await waiter(key, dead, acquire);

      await release(() => holding.release());
      const { ok, after } = await Promise.race([
        outcome,
        new Promise<{ ok: boolean; after: number }>((resolve) =>
          setTimeout(() => resolve({ ok: false, after: Infinity }), WOKEN_WITHIN).unref(),
        ),
      ]);
      expect(after, 'granted soon after the release, not at its fallback poll').toBeLessThan(
        WOKEN_WITHIN,
      );
      expect(ok).toBe(true);
      expect(isAcquired()).toBe(true);
      expect(await inspector.exists(key), 'the dead entries are gone').toBe(0);
      await releaseLive();
    });
  }
});
