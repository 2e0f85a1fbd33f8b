/**
 * Redis direct grant (strict FIFO), its failure cases on a real server of its own: a release
 * gives the lock to the first live waiter in line (the key set to that waiter's token, the
 * fencing token in the message), a newcomer never cuts in while someone waits, and each way a
 * grant can go wrong (the waiter gave up, died, never got the message, its subscriber dropped)
 * ends with the line moving on, never with two holders.
 */
import type { Redis } from 'ioredis';
import { LockAbortedError, LockTimeoutError, RedisLock } from 'nestjs-sherlock';
import { describe, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { delay, now } from '../support/helpers.js';
import { redisOfItsOwn } from '../support/redis-own.js';

/** Far above a pushed hand-off, below the 1.8 s a waiter's first fallback poll takes at least. */
const HANDOFF_LIMIT_MS = 1_000;
const SLOW_POLLING = { retryInterval: 5_000, timeout: 20_000 };

describe('redis: direct grant, strict first come first served (its own server)', () => {
  const redis = redisOfItsOwn();

  it("a lock granted by a release is stored with the waiter's own metadata (inspect() names it)", async ({
    expect,
    onTestFinished,
  }) => {
    const { client, manager, line, queued } = redis.setUp(onTestFinished);
    const first = manager({ appName: 'first' });
    const second = manager({ appName: 'second' });
    const name = uniqueName('fifo-meta');
    const holder = first.lock(name, { expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const { queueKey } = new RedisLock(name, { client: client() });
    const waiter = second.lock(name, SLOW_POLLING);
    const waiting = waiter.acquire();
    await queued(queueKey, 1, 'waiter queued');
    // The queued entry already carries the waiter's metadata (the release copies it to the key).
    const [entry] = await line(queueKey);
    expect(entry?.token).toContain('|second');
    await holder.release();
    expect(await waiting).toBe(true);
    const info = await first.inspect(name);
    expect(info.held).toBe(true);
    expect(info.holder?.app).toBe('second');
    expect(info.holder?.pid).toBe(process.pid);
    await waiter.release();
  });

  it('a client already listening puts a blocking acquire in line with its first attempt (one script call); a cold client takes two (the refused attempt, then its entry), in which time the lock can go to a newcomer', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, manager, queued } = redis.setUp(onTestFinished);
    const scriptCalls = async () => {
      const stats = await inspector.info('commandstats');
      return Number(/cmdstat_evalsha:calls=(\d+)/u.exec(stats)?.[1] ?? 0);
    };
    const holder = manager();
    const [busy, other] = [uniqueName('fifo-warm-a'), uniqueName('fifo-warm-b')];
    const held = [holder.lock(busy), holder.lock(other)];
    for (const lock of held) expect(await lock.acquire(false)).toBe(true);
    const queueOf = (name: string) => new RedisLock(name, { client: client() }).queueKey;

    // A waiter on `busy` subscribes its client's wake channel.
    const warm = manager();
    const first = warm.lock(busy, SLOW_POLLING);
    const firstDone = first.acquire();
    await queued(queueOf(busy), 1);
    await delay(200); // its second attempt (with its entry) is the one that queued it: done

    const before = await scriptCalls();
    const second = warm.lock(other, SLOW_POLLING);
    const secondDone = second.acquire();
    await queued(queueOf(other), 1);
    await delay(200);
    const warmCalls = (await scriptCalls()) - before;
    const cold = manager().lock(other, SLOW_POLLING);
    const coldDone = cold.acquire();
    await queued(queueOf(other), 2);
    await delay(200);
    const coldCalls = (await scriptCalls()) - before - warmCalls;
    expect(warmCalls, 'a listening client: in line with its first attempt').toBe(1);
    expect(coldCalls, 'a cold client: a refused attempt, then its entry').toBe(2);

    // And the line holds: each goes in turn.
    for (const lock of held) await lock.release();
    expect(await firstDone).toBe(true);
    expect(await secondDone).toBe(true);
    await second.release();
    expect(await coldDone).toBe(true);
    await Promise.all([first.release(), cold.release()]);
  });

  it('a newcomer never cuts in while someone waits, not even acquire(false) right behind the release; the waiter holds from the message alone', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, line, queued } = redis.setUp(onTestFinished);
    const name = uniqueName('fifo');
    const holder = new RedisLock(name, { client: client(), expire: 30_000 });
    const newcomer = new RedisLock(name, { client: client() });
    const waiter = new RedisLock(name, { client: client(), ...SLOW_POLLING });
    const cutIns: boolean[] = [];
    for (let round = 0; round < 5; round++) {
      expect(await holder.acquire(false)).toBe(true);
      const waiting = waiter.acquire();
      await queued(holder.queueKey, 1, 'waiter queued');
      const [entry] = await line(holder.queueKey);
      expect(entry?.mode, 'one server: plain pub/sub').toBe('p');
      expect(entry?.expire, "the waiter's expire travels with it").toBe('60000');
      // The newcomer's attempt goes out right behind the release, on another connection.
      const released = holder.release();
      const attempt = newcomer.acquire(false);
      await released;
      cutIns.push(await attempt);
      expect(await waiting).toBe(true);
      expect(await inspector.get(holder.key), "the key holds the waiter's queued token").toBe(
        entry?.token,
      );
      expect(BigInt(waiter.fencingToken ?? -1)).toBeGreaterThan(BigInt(holder.fencingToken ?? -1));
      await waiter.release();
      expect(await inspector.exists(holder.key), 'its token released it').toBe(0);
    }
    expect(cutIns, 'the newcomer never cut in').toEqual([false, false, false, false, false]);
    // Control: nobody in line, the newcomer gets the free lock.
    expect(await newcomer.acquire(false)).toBe(true);
    await newcomer.release();
  });

  it('a waiter aborted at the moment it is granted gives the lock back to the next in line; one that timed out has left the line; one whose deadline comes with its grant message lost takes the grant by its last attempt', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, line, queued } = redis.setUp(onTestFinished);
    for (const way of ['abort', 'timeout', 'deadline'] as const) {
      const name = uniqueName(`quit-${way}`);
      const holder = new RedisLock(name, { client: client(), expire: 30_000 });
      expect(await holder.acquire(false)).toBe(true);
      const controller = new AbortController();
      const quitter = new RedisLock(name, {
        client: client(),
        expire: 60_000,
        ...SLOW_POLLING,
        ...(way === 'abort' ? {} : { timeout: 1_500 }),
      });
      const outcome = quitter.acquire({ signal: controller.signal }).then(
        (ok) => ({ ok, err: undefined }),
        (err: unknown) => ({ ok: false, err }),
      );
      await queued(holder.queueKey, 1, 'quitter queued');
      const [quitterEntry] = await line(holder.queueKey);
      const next = new RedisLock(name, { client: client(), ...SLOW_POLLING });
      const acquired = next.acquire().then(() => now());
      await queued(holder.queueKey, 2, 'next queued');

      if (way === 'abort') {
        // Released and aborted in the same tick: the grant message cannot have arrived yet.
        const released = holder.release();
        controller.abort();
        await released;
        expect((await outcome).err).toBeInstanceOf(LockAbortedError);
      } else if (way === 'timeout') {
        expect((await outcome).err).toBeInstanceOf(LockTimeoutError);
        expect(await inspector.zcard(holder.queueKey), 'it left the line').toBe(1);
        await holder.release();
      } else {
        // The quitter's grant message goes to an id nobody has (lost): granted, never told.
        await inspector.zrem(holder.queueKey, quitterEntry?.raw ?? '');
        const lost = `${quitterEntry?.mode} ${quitterEntry?.channel} lost ${quitterEntry?.token} 60000`;
        await inspector.zadd(holder.queueKey, 0, lost);
        await holder.release();
        expect(await inspector.get(holder.key), 'granted to the quitter').toBe(quitterEntry?.token);
        expect((await outcome).ok, 'its last attempt, at the deadline, found the grant').toBe(true);
        expect(quitter.isAcquired).toBe(true);
        await quitter.release();
      }
      const releasedAt = now();
      const gap = (await acquired) - releasedAt;
      expect(gap, "passed on at once, not left to the quitter's 60 s expiry").toBeLessThan(
        HANDOFF_LIMIT_MS,
      );
      expect(next.isAcquired).toBe(true);
      await next.release();
      expect(await inspector.exists(holder.key)).toBe(0);
      expect(await inspector.exists(holder.queueKey), 'the line is empty').toBe(0);
    }
  });

  it('a granted waiter that is gone (its id unknown to a live subscriber) holds the line for its own expire only; a dead channel is skipped at once', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, line, queued } = redis.setUp(onTestFinished);
    const name = uniqueName('ghost');
    const holder = new RedisLock(name, { client: client(), expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const waiter = new RedisLock(name, { client: client(), ...SLOW_POLLING });
    const acquired = waiter.acquire().then(() => now());
    await queued(holder.queueKey, 1, 'waiter queued');
    const [live] = await line(holder.queueKey);
    // Ahead of it: a dead process (nobody listens on its channel), then a waiter whose process
    // lives (its channel is live) but which is gone itself and asked for a 1.5 s expiry.
    await inspector.zadd(holder.queueKey, 1, `p ${live?.channel} ghost ghost-token 1500`);
    await inspector.zadd(holder.queueKey, 0, 'p sherlock:wake:dead-process 0 dead-token 30000');
    await holder.release();
    const releasedAt = now();
    expect(await inspector.get(holder.key), 'the dead one skipped, the ghost granted').toBe(
      'ghost-token',
    );
    const gap = (await acquired) - releasedAt;
    expect(gap, 'not before the ghost expired').toBeGreaterThan(1_000);
    expect(gap, "within the ghost's expiry and a fallback poll or two").toBeLessThan(12_000);
    expect(waiter.isAcquired).toBe(true);
    expect(await inspector.get(holder.key)).toBe(live?.token);
    await waiter.release();
  });

  it('a lost grant message: the waiter finds the grant by its fallback poll, with a new, higher fencing token; its release is owner-checked', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, line, queued } = redis.setUp(onTestFinished);
    const name = uniqueName('lost');
    const holder = new RedisLock(name, { client: client(), expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const waiter = new RedisLock(name, {
      client: client(),
      expire: 30_000,
      ...SLOW_POLLING,
    });
    const acquired = waiter.acquire().then(() => now());
    await queued(holder.queueKey, 1, 'waiter queued');
    const [entry] = await line(holder.queueKey);
    // The same waiter, but the message goes to an id nobody has: as if lost on the way.
    await inspector.zrem(holder.queueKey, entry?.raw ?? '');
    await inspector.zadd(holder.queueKey, 0, `p ${entry?.channel} lost ${entry?.token} 30000`);
    const fenceBefore = BigInt((await inspector.get(holder.fencingKey)) ?? -1);
    await holder.release();
    const releasedAt = now();
    const grantFence = BigInt((await inspector.get(holder.fencingKey)) ?? -1);
    expect(grantFence, 'the release issued a fencing token').toBe(fenceBefore + 1n);
    expect(await inspector.get(holder.key)).toBe(entry?.token);
    const acquiredAt = await acquired;
    const pttl = await inspector.pttl(holder.key);
    const sinceAcquired = now() - acquiredAt;
    const gap = acquiredAt - releasedAt;
    expect(gap, 'found by the fallback poll, not by a message').toBeGreaterThan(2_500);
    // The waiter counts its 30 s from the poll that found the grant: the server must too (the
    // grant's own 30 s started `gap` earlier, at the release). Margin: 2 s for the poll's trip.
    expect(pttl, "the expiry starts again at the poll, not at the release's grant").toBeGreaterThan(
      30_000 - 2_000 - sinceAcquired,
    );
    expect(BigInt(waiter.fencingToken ?? -1), 'a new token, above the unused one').toBeGreaterThan(
      grantFence,
    );
    // Another object cannot release it; the waiter can.
    const other = new RedisLock(name, { client: inspector });
    expect(await other.acquire(false)).toBe(false);
    await waiter.release();
    expect(await inspector.exists(holder.key)).toBe(0);
  });

  it('the subscriber connection is killed while the release grants: the grant is taken back (nobody received it), and the reconnect makes the waiter try again at once', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, queued } = redis.setUp(onTestFinished);
    const name = uniqueName('reconnect');
    const holder = new RedisLock(name, { client: client(), expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const waiter = new RedisLock(name, { client: client(), ...SLOW_POLLING });
    const acquired = waiter.acquire().then(() => now());
    await queued(holder.queueKey, 1, 'waiter queued');
    // Kill every pub/sub connection (only the waiter's is on this server), then release at once.
    const killed = await inspector.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    expect(Number(killed)).toBeGreaterThan(0);
    await holder.release();
    const releasedAt = now();
    const gap = (await acquired) - releasedAt;
    expect(gap, 'woken by the reconnect, not by its 2 s poll').toBeLessThan(HANDOFF_LIMIT_MS);
    expect(waiter.isAcquired).toBe(true);
    await waiter.release();
  });

  it('8 waiters on 4 clients: served in the order they queued, fencing tokens strictly increasing in holding order, never two holders', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, queued } = redis.setUp(onTestFinished);
    const clients = [0, 1, 2, 3].map(() => client());
    const name = uniqueName('order');
    const holder = new RedisLock(name, { client: clients[0] as Redis, expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const order: number[] = [];
    const tokens: bigint[] = [];
    let holding = 0;
    let overlaps = 0;
    const done: Promise<void>[] = [];
    for (let i = 0; i < 8; i++) {
      const lock = new RedisLock(name, { client: clients[i % 4] as Redis, ...SLOW_POLLING });
      done.push(
        lock.acquire().then(async () => {
          if (++holding > 1) overlaps++;
          order.push(i);
          tokens.push(BigInt(lock.fencingToken ?? -1));
          await delay(5);
          holding--;
          await lock.release();
        }),
      );
      await queued(holder.queueKey, i + 1, `waiter ${i} queued`);
    }
    await holder.release();
    await Promise.all(done);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(overlaps).toBe(0);
    for (let i = 1; i < tokens.length; i++) {
      expect(tokens[i]).toBeGreaterThan(tokens[i - 1] ?? 0n);
    }
    expect(await inspector.exists(holder.queueKey)).toBe(0);
  });
});
