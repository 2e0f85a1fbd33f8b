/**
 * The Redis semaphore by direct grant, on a real server of its own: a release gives its permit
 * to the first waiter in line (one waiter per freed permit), a newcomer queues while the line is
 * not empty (even `acquire(false)` right behind a release), fencing tokens grow in holding order,
 * and each way a grant can go wrong (the waiter gave up, died, never got the message, its
 * subscriber dropped) ends with the line moving on, never with more than `limit` holders.
 */
import { LockAbortedError, LockNotHeldError, LockTimeoutError } from 'nestjs-sherlock';
import { describe, it, type TestContext } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { delay, now } from '../support/helpers.js';
import { remainingMs } from '../support/redis-expiry.js';
import { findKey, redisOfItsOwn, SEMAPHORE_LINE } from '../support/redis-own.js';

/** Far above a pushed hand-off, below the 1.8 s a waiter's first fallback poll takes at least. */
const HANDOFF_LIMIT_MS = 1_000;
const SLOW_POLLING = { retryInterval: 5_000, timeout: 20_000 };

describe('redis semaphore: direct grant, strict first come first served (its own server)', () => {
  const redis = redisOfItsOwn();

  /** Managers on fresh clients, closed after the test, an inspecting client, the line's readers. */
  const setUp = (onTestFinished: TestContext['onTestFinished']) => {
    const made = redis.setUp(onTestFinished, { expire: 30_000 }, SEMAPHORE_LINE);
    /** The permits held, by token. */
    const permits = async (name: string) => {
      const key = await findKey(made.inspector, `*sem:*${name}`);
      return key === undefined ? [] : made.inspector.zrange(key, '0', '-1');
    };
    return { ...made, permits };
  };

  it('6 waiters on 2 clients are served in the order they queued, one per freed permit; a newcomer never cuts in, not even acquire(false) right behind a release; fencing tokens grow in holding order', async ({
    expect,
    onTestFinished,
  }) => {
    const { manager, line, queued } = setUp(onTestFinished);
    const [m1, m2] = [manager(), manager()];
    const name = uniqueName('sem-order');
    const sem = (i: number) => (i % 2 === 0 ? m1 : m2).semaphore(name, 2, SLOW_POLLING);
    const holders = [sem(0), sem(1)];
    for (const holder of holders) expect(await holder.acquire(false)).toBe(true);
    const grants: { i: number; token: bigint }[] = [];
    let holding = 2;
    let most = 2;
    const done: Promise<void>[] = [];
    for (let i = 0; i < 6; i++) {
      const waiter = sem(i);
      done.push(
        waiter.acquire().then(async () => {
          most = Math.max(most, ++holding);
          grants.push({ i, token: BigInt(waiter.fencingToken ?? -1) });
          await delay(5);
          holding--;
          await waiter.release();
        }),
      );
      await queued(name, i + 1);
    }
    const [entry] = await line(name);
    expect(entry?.mode, 'one server: plain pub/sub').toBe('p');
    expect(entry?.expire, "the waiter's expire travels with it").toBe('30000');
    expect(entry?.limit, 'and its limit').toBe('2');
    // The newcomer's attempt goes out right behind the release, on another connection.
    const newcomer = sem(9);
    holding--;
    const released = holders[0]?.release();
    const cutIn = newcomer.acquire(false);
    await released;
    expect(await cutIn, 'the newcomer did not cut in').toBe(false);
    holding--;
    await holders[1]?.release();
    await Promise.all(done);
    // Fencing tokens are issued at the grant: in their order, the waiters in the order they
    // queued (two permits: two grants' messages may reach two clients in either order).
    grants.sort((a, b) => (a.token < b.token ? -1 : a.token > b.token ? 1 : 0));
    expect(grants.map((g) => g.i)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(new Set(grants.map((g) => g.token)).size).toBe(6);
    expect(most, 'never more than the limit').toBeLessThanOrEqual(2);
    expect(await line(name), 'the line is empty').toHaveLength(0);
    // Control: nobody in line, the newcomer gets a free permit.
    expect(await newcomer.acquire(false)).toBe(true);
    await newcomer.release();
  });

  it('a waiter aborted at the moment it is granted gives its permit to the next in line; one that timed out has left the line', async ({
    expect,
    onTestFinished,
  }) => {
    const { manager, line, queued, permits } = setUp(onTestFinished);
    for (const way of ['abort', 'timeout'] as const) {
      const name = uniqueName(`sem-quit-${way}`);
      const holder = manager().semaphore(name, 1);
      expect(await holder.acquire(false)).toBe(true);
      const controller = new AbortController();
      const quitter = manager().semaphore(name, 1, {
        ...SLOW_POLLING,
        expire: 60_000,
        ...(way === 'abort' ? {} : { timeout: 1_500 }),
      });
      const outcome = quitter.acquire({ signal: controller.signal }).then(
        (ok) => ({ ok, err: undefined as unknown }),
        (err: unknown) => ({ ok: false, err }),
      );
      await queued(name, 1);
      const next = manager().semaphore(name, 1, SLOW_POLLING);
      const acquired = next.acquire().then(() => now());
      await queued(name, 2);
      if (way === 'abort') {
        // Released and aborted in the same tick: the grant message cannot have arrived yet.
        const released = holder.release();
        controller.abort();
        await released;
        expect((await outcome).err).toBeInstanceOf(LockAbortedError);
      } else {
        expect((await outcome).err).toBeInstanceOf(LockTimeoutError);
        expect(await line(name), 'it left the line').toHaveLength(1);
        await holder.release();
      }
      const releasedAt = now();
      const gap = (await acquired) - releasedAt;
      expect(gap, "passed on at once, not left to the quitter's 60 s expiry").toBeLessThan(
        HANDOFF_LIMIT_MS,
      );
      expect(quitter.isAcquired).toBe(false);
      expect(await permits(name)).toEqual([next.holding?.token]);
      await next.release();
    }
  });

  it('a dead waiter (nobody listens) is skipped at once; a gone one whose process lives holds its permit for its own expire only', async ({
    expect,
    onTestFinished,
  }) => {
    const { manager, inspector, line, queued, permits } = setUp(onTestFinished);
    const name = uniqueName('sem-ghost');
    const holder = manager().semaphore(name, 1);
    expect(await holder.acquire(false)).toBe(true);
    const waiter = manager().semaphore(name, 1, SLOW_POLLING);
    const acquired = waiter.acquire().then(() => now());
    await queued(name, 1);
    const [live] = await line(name);
    await inspector.zadd(live?.key ?? '', 1, `p ${live?.channel} ghost ghost-token 1500 1`);
    await inspector.zadd(live?.key ?? '', 0, 'p sherlock:wake:dead-process 0 dead-token 30000 1');
    await holder.release();
    const releasedAt = now();
    expect(await permits(name), 'the dead one skipped, the ghost granted').toEqual(['ghost-token']);
    const gap = (await acquired) - releasedAt;
    expect(gap, 'not before the ghost expired').toBeGreaterThan(1_000);
    expect(gap, "within the ghost's expiry and a fallback poll or two").toBeLessThan(12_000);
    expect(waiter.isAcquired).toBe(true);
    await waiter.release();
  });

  it('a lost grant message: the waiter finds its permit by its fallback poll, with a new, higher fencing token', async ({
    expect,
    onTestFinished,
  }) => {
    const { manager, inspector, line, queued, permits } = setUp(onTestFinished);
    const name = uniqueName('sem-lost');
    const holder = manager().semaphore(name, 1);
    expect(await holder.acquire(false)).toBe(true);
    const waiter = manager().semaphore(name, 1, SLOW_POLLING);
    const acquired = waiter.acquire().then(() => now());
    await queued(name, 1);
    const [entry] = await line(name);
    await inspector.zrem(entry?.key ?? '', entry?.raw ?? '');
    await inspector.zadd(entry?.key ?? '', 0, `p ${entry?.channel} lost ${entry?.token} 30000 1`);
    await holder.release();
    const releasedAt = now();
    expect(await permits(name)).toEqual([entry?.token]);
    const acquiredAt = await acquired;
    const left = await remainingMs(inspector, `*sem:*${name}`, entry?.token ?? '');
    const gap = acquiredAt - releasedAt;
    expect(gap, 'found by the fallback poll, not by a message').toBeGreaterThan(1_500);
    // The waiter counts its 30 s from the poll that found the permit: the server must too (the
    // grant's 30 s started `gap` earlier). Margin: 1 s for the poll's trip.
    expect(left, 'the expiry starts again at the poll').toBeGreaterThan(
      30_000 - 1_000 - (now() - acquiredAt),
    );
    expect(BigInt(waiter.fencingToken ?? -1)).toBeGreaterThan(
      BigInt(holder.fencingToken ?? -1) + 1n,
    );
    expect(await holder.acquire(false), 'the limit holds').toBe(false);
    await waiter.release();
    expect(await permits(name)).toEqual([]);
  });

  it("uncontended (nobody in line): the permits' set expires with its latest permit, never earlier; one without expiry keeps it until given back; a full set of expired permits lets a newcomer in; an expired permit is not given back", async ({
    expect,
    onTestFinished,
  }) => {
    const { manager, inspector, permits } = setUp(onTestFinished);
    const name = uniqueName('sem-expiry');
    const m = manager();
    const scriptCalls = async () => {
      const stats = await inspector.info('commandstats');
      return Number(/cmdstat_evalsha:calls=(\d+)/u.exec(stats)?.[1] ?? 0);
    };
    // A blocking acquire + release, nobody in line: one script each, no waiter (nothing else).
    // (Once before, on another name: the server loads the scripts, EVALSHA then EVAL.)
    const warmUp = m.semaphore(uniqueName('sem-warm-up'), 3);
    expect(await warmUp.acquire()).toBe(true);
    await warmUp.release();
    const before = await scriptCalls();
    const alone = m.semaphore(name, 3, { expire: 30_000 });
    expect(await alone.acquire()).toBe(true);
    await alone.release();
    expect((await scriptCalls()) - before).toBe(2);

    const sem = (expire: number | null) => m.semaphore(name, 3, { expire });
    const setTtl = async () => {
      const key = await findKey(inspector, `*sem:*${name}`);
      return key === undefined ? -2 : inspector.pttl(key);
    };
    const [a, b, c, d] = [sem(10_000), sem(40_000), sem(5_000), sem(null)];
    expect(await a.acquire(false)).toBe(true);
    const first = await setTtl();
    expect(first, "a new set: its permit's expiry").toBeGreaterThan(5_000);
    expect(first).toBeLessThanOrEqual(10_000);
    expect(await b.acquire(false)).toBe(true);
    expect(await setTtl(), 'moved later by a later permit').toBeGreaterThan(30_000);
    expect(await c.acquire(false)).toBe(true);
    expect(await setTtl(), 'never earlier').toBeGreaterThan(30_000);
    await b.release();
    expect(await d.acquire(false)).toBe(true);
    expect(await setTtl(), 'a permit without expiry: no expiry').toBe(-1);
    expect(await sem(60_000).acquire(false), 'the limit holds').toBe(false);
    expect(await setTtl(), 'a later permit does not give it one').toBe(-1);
    await d.release();
    const left = await setTtl();
    expect(left, 'given back: the latest permit left (a, 10 s)').toBeGreaterThan(0);
    expect(left).toBeLessThanOrEqual(10_000);
    await a.release();
    await c.release();
    expect(await permits(name)).toEqual([]);

    // A permit that expired, still a member of the set (nothing dropped it yet): its release is
    // refused, and it leaves the set.
    const keeper = m.semaphore(name, 2, { expire: 30_000 });
    expect(await keeper.acquire(false)).toBe(true);
    const [keeperToken] = await permits(name);
    const gone = m.semaphore(name, 2, { expire: 300 });
    expect(await gone.acquire(false)).toBe(true);
    await delay(700);
    expect(await permits(name), 'expired, still a member').toHaveLength(2);
    await expect(gone.release()).rejects.toBeInstanceOf(LockNotHeldError);
    expect(await permits(name)).toEqual([keeperToken]);
    // The set full of members, one expired: a newcomer gets in (the expired one is dropped).
    expect(await gone.acquire(false)).toBe(true);
    const goneToken = (await permits(name)).find((token) => token !== keeperToken);
    await delay(700);
    const newcomer = m.semaphore(name, 2, { expire: 30_000 });
    expect(await newcomer.acquire(false), 'the expired permit makes room').toBe(true);
    expect(await permits(name)).toHaveLength(2);
    expect(await permits(name)).not.toContain(goneToken);
    await keeper.release();
    await newcomer.release();
    expect(await permits(name)).toEqual([]);
  });

  it('the subscriber connection is killed while the release grants: the grant is taken back, and the reconnect makes the waiter try again at once', async ({
    expect,
    onTestFinished,
  }) => {
    const { manager, inspector, queued } = setUp(onTestFinished);
    const name = uniqueName('sem-reconnect');
    const holder = manager().semaphore(name, 1);
    expect(await holder.acquire(false)).toBe(true);
    const waiter = manager().semaphore(name, 1, SLOW_POLLING);
    const acquired = waiter.acquire().then(() => now());
    await queued(name, 1);
    const killed = await inspector.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    expect(Number(killed)).toBeGreaterThan(0);
    await holder.release();
    const releasedAt = now();
    const gap = (await acquired) - releasedAt;
    expect(gap, 'woken by the reconnect, not by its 2 s poll').toBeLessThan(HANDOFF_LIMIT_MS);
    expect(waiter.isAcquired).toBe(true);
    await waiter.release();
  });
});
