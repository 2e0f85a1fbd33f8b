/**
 * Redis direct grant, the waiter's side (on a real server of its own): a grant message resolves
 * the sleeping acquire by itself (no script call by the waiter), with the same events as any
 * acquire; a give-up that comes in the same tick as the grant message (before or after the
 * acquire took it) leaves the line ungranted and LEAVE passes the lock on to the next in line.
 */
import { Redis } from 'ioredis';
import {
  type LockEvent,
  LockAbortedError,
  LockBackendError,
  RedisLock,
  LOCK_EVENT_TYPES,
  ReplicaAckError,
  waitForReplicas,
} from 'nestjs-sherlock';
import { describe, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { redisOfItsOwn } from '../support/redis-own.js';

/** Waiters poll rarely: a grant reaches them by message only (the first fallback poll is ~2 s). */
const SLOW_POLLING = { retryInterval: 5_000, timeout: 20_000 };

describe('redis: the grant message resolves the waiting acquire (its own server)', () => {
  const redis = redisOfItsOwn();

  /** Counts the scripts a client sends (the waiter's attempts), on the real client. */
  const countScripts = (client: Redis) => {
    const counter = { calls: 0 };
    const evalsha = client.evalsha.bind(client) as (...args: unknown[]) => Promise<unknown>;
    const evalScript = client.eval.bind(client) as (...args: unknown[]) => Promise<unknown>;
    Object.assign(client, {
      evalsha: (...args: unknown[]) => {
        counter.calls++;
        return evalsha(...args);
      },
      eval: (...args: unknown[]) => {
        counter.calls++;
        return evalScript(...args);
      },
    });
    return counter;
  };

  it('the waiter holds from the message alone: no script call after the release, its queued token, a higher fencing token, and the events waiting then acquired', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, manager: managerOn, queued } = redis.setUp(onTestFinished);
    const waiterClient = client();
    const scripts = countScripts(waiterClient);
    const manager = managerOn({ client: waiterClient, ...SLOW_POLLING });
    const events: LockEvent[] = [];
    for (const type of LOCK_EVENT_TYPES) manager.on(type, (event) => events.push(event));
    const name = uniqueName('pushed');
    const holder = new RedisLock(name, { client: client(), expire: 30_000 });
    const waiter = manager.lock(name, { expire: 30_000 });
    for (let round = 0; round < 3; round++) {
      events.length = 0;
      expect(await holder.acquire(false)).toBe(true);
      const waiting = waiter.acquire();
      await queued(holder.queueKey, 1, 'waiter queued');
      const [entry] = await inspector.zrange(holder.queueKey, '0', '-1');
      const before = scripts.calls;
      await holder.release();
      expect(await waiting).toBe(true);
      expect(
        scripts.calls - before,
        'no script call by the waiter: the message is the answer',
      ).toBe(0);
      expect(await inspector.get(holder.key)).toBe(entry?.split(' ')[3]);
      expect(BigInt(waiter.fencingToken ?? -1)).toBeGreaterThan(BigInt(holder.fencingToken ?? -1));
      expect(events.map((e) => e.type)).toEqual(['waiting', 'acquired']);
      const acquired = events[1];
      expect(acquired).toMatchObject({
        type: 'acquired',
        name,
        backend: 'redis',
        blocking: true,
        fencingToken: waiter.fencingToken,
      });
      expect(acquired?.waited).toBeGreaterThan(0);
      await waiter.release();
      expect(await inspector.exists(holder.key), 'released by its queued token').toBe(0);
    }
  });

  it('with waitForReplicas the message alone does not grant: the waiter confirms by its own write and WAIT (no replica here: it fails, and gives the lock back)', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, queued } = redis.setUp(onTestFinished);
    const name = uniqueName('pushed-wait');
    const holder = new RedisLock(name, { client: client(), expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    // This server has no replica: WAIT 1 answers 0, so no grant on this client can count.
    const waiterClient = waitForReplicas(client(), { replicas: 1, timeout: 50 });
    const waiter = new RedisLock(name, { client: waiterClient, ...SLOW_POLLING, timeout: 1_500 });
    const outcome = waiter.acquire().then(
      () => undefined,
      (err: unknown) => err,
    );
    await queued(holder.queueKey, 1, 'waiter queued');
    await holder.release();
    const error = await outcome;
    expect(error, 'not granted by the message alone').toBeInstanceOf(LockBackendError);
    expect((error as LockBackendError).cause).toBeInstanceOf(ReplicaAckError);
    expect(waiter.isAcquired).toBe(false);
    expect(await inspector.exists(holder.key), 'given back').toBe(0);
  });

  it('aborted in the same tick as the grant message, before or after the acquire took it: aborted, and the next in line gets the lock', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, queued } = redis.setUp(onTestFinished);
    for (const order of ['abort, then the grant', 'the grant, then abort'] as const) {
      const name = uniqueName('abort-at-grant');
      const holder = new RedisLock(name, { client: client(), expire: 30_000 });
      expect(await holder.acquire(false)).toBe(true);
      // The quitter's subscriber connection (ioredis `duplicate()`) aborts when a message comes:
      // its listener runs before the library's, or after it (added once the library's is on).
      const controller = new AbortController();
      const quitterClient = client();
      const duplicate = quitterClient.duplicate.bind(quitterClient);
      Object.assign(quitterClient, {
        duplicate: (...args: Parameters<Redis['duplicate']>) => {
          const subscriber = duplicate(...args);
          const abort = () => controller.abort();
          if (order === 'abort, then the grant') subscriber.on('message', abort);
          else setImmediate(() => subscriber.on('message', abort));
          return subscriber;
        },
      });
      const quitter = new RedisLock(name, { client: quitterClient, ...SLOW_POLLING });
      const outcome = quitter.acquire({ signal: controller.signal }).then(
        () => undefined,
        (err: unknown) => err,
      );
      await queued(holder.queueKey, 1, 'quitter queued');
      const next = new RedisLock(name, { client: client(), ...SLOW_POLLING });
      const nextAcquired = next.acquire();
      await queued(holder.queueKey, 2, 'next queued');
      await holder.release();
      expect(await outcome, order).toBeInstanceOf(LockAbortedError);
      expect(quitter.isAcquired, order).toBe(false);
      expect(await nextAcquired, `${order}: passed on by LEAVE`).toBe(true);
      expect(BigInt(next.fencingToken ?? -1), order).toBeGreaterThan(
        BigInt(holder.fencingToken ?? -1),
      );
      await next.release();
      expect(await inspector.exists(holder.key), order).toBe(0);
      expect(await inspector.exists(holder.queueKey), `${order}: the line is empty`).toBe(0);
    }
  });
});
