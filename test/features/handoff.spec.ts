/**
 * Server-pushed hand-off: a blocked acquire is woken by the release (Redis pub/sub on one shared
 * subscriber connection per client, the Etcd watch on the key, the MemoryStore's queue), not by
 * its polling: with retryInterval 5000 it still gets the lock right after the release. Memory is
 * first come, first served. Memcached keeps polling, with jitter.
 */
import { Redis } from 'ioredis';
import {
  LockAbortedError,
  LockTimeoutError,
  MemoryLock,
  MemoryStore,
  RedisLock,
} from 'nestjs-sherlock';
import { afterAll, describe, it } from 'vitest';

import { POLL, PUSH, uniqueName } from '../support/backends.js';
import { redisUrl } from '../support/env.js';
import { delay, now, rejectionOf, waitFor } from '../support/helpers.js';
import { closeEtcdInspector, etcdInspector, redisRaw } from '../support/inspect.js';
import { scope } from '../support/locks.js';
import { redisOfItsOwn } from '../support/redis-own.js';

afterAll(closeEtcdInspector);

/** Far above what a pushed hand-off takes, far below the 2 s fallback poll and retryInterval. */
const HANDOFF_LIMIT_MS = 1_000;
const SLOW_POLLING = { retryInterval: 5_000, timeout: 10_000 };

describe.concurrent('a blocked acquire is woken by the release', () => {
  it.for(PUSH)(
    `$name (declares push hand-off): with retryInterval 5000 the waiter gets the lock within ${HANDOFF_LIMIT_MS} ms of the release`,
    async (f, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const name = uniqueName('handoff');
      const holder = lock(f, name, { expire: 30_000 });
      const waiter = lock(f, name, SLOW_POLLING);
      expect(await holder.acquire(false)).toBe(true);
      const holderToken = holder.fencingToken;

      const start = now();
      const acquired = waiter.acquire().then((ok) => ({ ok, at: now() }));
      await delay(300);
      await holder.release();
      const releasedAt = now();
      const { ok, at } = await acquired;
      const gap = at - releasedAt;
      console.log(`${f.name}: hand-off ${gap.toFixed(1)} ms after the release`);
      expect(ok).toBe(true);
      expect(at - start, 'it did wait for the release').toBeGreaterThan(250);
      expect(gap).toBeLessThan(HANDOFF_LIMIT_MS);
      if (f.capabilities.fencing) {
        expect(BigInt(waiter.fencingToken ?? -1)).toBeGreaterThan(BigInt(holderToken ?? -1));
      } else {
        expect(waiter.fencingToken).toBeUndefined();
      }
      await waiter.release();
    },
  );

  it.for(POLL)(
    '$name (declares polling, with jitter): a waiter with retryInterval 200 gets the lock after the release, not before',
    async (f, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const name = uniqueName('polling');
      const holder = lock(f, name, { expire: 30_000 });
      const waiter = lock(f, name, { retryInterval: 200, timeout: 10_000 });
      expect(await holder.acquire(false)).toBe(true);
      const acquired = waiter.acquire().then((ok) => ({ ok, at: now() }));
      await delay(300);
      expect(waiter.isAcquired).toBe(false);
      // The waiter's poll can succeed before the releaser's own answer is back (on a loaded
      // machine, before its continuation runs): "after the release" counts from the call.
      const releaseCalledAt = now();
      await holder.release();
      const releasedAt = now();
      const { ok, at } = await acquired;
      console.log(
        `${f.name}: polled hand-off ${(at - releasedAt).toFixed(1)} ms after the release`,
      );
      expect(ok).toBe(true);
      expect(at).toBeGreaterThan(releaseCalledAt);
      expect(at - releasedAt).toBeLessThan(3_000);
    },
  );

  it('redis: a holder that expires instead of releasing: a waiter (retryInterval 5000) gets the lock soon after its TTL ran out, not seconds later', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const name = uniqueName('ttl-wait');
    const holder = lock('redis', name, { expire: 2_200 });
    const waiter = lock('redis', name, SLOW_POLLING);
    const start = now();
    expect(await holder.acquire(false)).toBe(true);
    expect(await waiter.acquire()).toBe(true);
    const after = now() - start;
    console.log(
      `redis: holder expired after 2200 ms, waiter got the lock at ${after.toFixed(0)} ms`,
    );
    // Waiting by the holder's TTL: ~2200 ms. Polling only (every 2 s, the fallback): ~4000 ms.
    expect(after).toBeGreaterThan(2_100);
    expect(after).toBeLessThan(3_400);
  });

  it("etcd: a holder whose lease runs out: its entry's delete wakes the waiter (retryInterval 5000)", async ({
    expect,
    onTestFinished,
  }) => {
    const { lock, defer } = scope(onTestFinished);
    const name = uniqueName('lease-wait');
    const holder = lock('etcd', name, { expire: 3_000 });
    const waiter = lock('etcd', name, SLOW_POLLING);
    const watcher = await etcdInspector().watch().prefix(`${holder.key}\u001f`).create();
    defer(() => watcher.cancel());
    let deletedAt: number | undefined;
    watcher.on('delete', () => (deletedAt ??= now()));

    const start = now();
    expect(await holder.acquire(false)).toBe(true);
    expect(await waiter.acquire()).toBe(true);
    const acquiredAt = now();
    expect(deletedAt, 'the lease deleted the key').toBeDefined();
    const gap = acquiredAt - (deletedAt ?? 0);
    console.log(
      `etcd: lease expiry deleted the key at ${((deletedAt ?? 0) - start).toFixed(0)} ms, waiter got the lock ${gap.toFixed(1)} ms later`,
    );
    expect((deletedAt ?? 0) - start).toBeGreaterThan(2_900);
    expect(gap).toBeLessThan(HANDOFF_LIMIT_MS);
  });

  it('redis: the waiters of one client share ONE subscriber connection (one channel), closed after the last one leaves', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock, defer } = scope(onTestFinished);
    const connectionName = `feat-sub-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const client = new Redis(redisUrl(), { connectionName });
    defer(() => client.disconnect());
    const ours = async () =>
      String(await redisRaw(['CLIENT', 'LIST']))
        .split('\n')
        .filter((line) => line.includes(` name=${connectionName} `));

    const names = [uniqueName('shared-a'), uniqueName('shared-b')];
    const holders = await Promise.all(
      names.map(async (name) => {
        const holder = lock('redis', name, { expire: 30_000 });
        expect(await holder.acquire(false)).toBe(true);
        return holder;
      }),
    );
    const queues = holders.map((holder) => (holder as RedisLock).queueKey);
    const order: string[] = [];
    const waiting = Array.from({ length: 10 }, (_, i) => {
      const name = names[i < 7 ? 0 : 1] ?? '';
      const waiter = lock('redis', name, SLOW_POLLING, client);
      return waiter.acquire().then(async (ok) => {
        expect(ok).toBe(true);
        order.push(name);
        await waiter.release();
      });
    });

    await waitFor(
      async () =>
        (await redisRaw(['ZCARD', queues[0] ?? ''])) === 7 &&
        (await redisRaw(['ZCARD', queues[1] ?? ''])) === 3,
      { what: 'all 10 waiters queued' },
    );
    const connections = await ours();
    expect(connections, connections.join('\n')).toHaveLength(2); // the client + one subscriber
    expect(connections.filter((line) => / sub=1 /.test(line))).toHaveLength(1);

    // The releases hand the lock from waiter to waiter: 7 on one name, then 3 on the other.
    const start = now();
    await holders[0]?.release();
    await waitFor(() => order.length === 7, {
      what: 'the 7 waiters of the first lock',
      timeout: 5_000,
      interval: 5,
    });
    await holders[1]?.release();
    await Promise.all(waiting);
    console.log(`redis: 10 waiters (one client) served in ${(now() - start).toFixed(0)} ms`);

    expect(await redisRaw(['EXISTS', queues[0] ?? '', queues[1] ?? ''])).toBe(0);
    await waitFor(async () => (await ours()).length === 1, {
      what: 'the subscriber connection closed',
    });
  });
});

describe('redis: a queue of waiters, one woken per release (its own server, one test at a time, so that its command counts are exact)', () => {
  /** A dedicated server, so that its command counts are ours alone. */
  const redis = redisOfItsOwn();
  const calls = async (client: Redis): Promise<number> => {
    const stats = await client.info('commandstats');
    return Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  };

  it('8 waiters, each with its own client, queue up in order; each release grants the first directly (the release script only, no attempt by the waiter), in queue order', async ({
    expect,
    onTestFinished,
  }) => {
    const { client: connect, inspector, queued } = redis.setUp(onTestFinished);
    const name = uniqueName('queue');
    const holder = new RedisLock(name, { client: connect(), expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const order: number[] = [];
    const gate: Array<() => void> = [];
    const waiters = Array.from(
      { length: 8 },
      () => new RedisLock(name, { client: connect(), ...SLOW_POLLING }),
    );
    const done: Promise<void>[] = [];
    for (const [i, waiter] of waiters.entries()) {
      done.push(
        waiter.acquire().then(async () => {
          order.push(i);
          await new Promise<void>((resolve) => gate.push(resolve));
          await waiter.release();
        }),
      );
      // Queued one after the other, so the queue order is known.
      await queued(holder.queueKey, i + 1, `waiter ${i} queued`);
    }

    // Each waiter has just made its queued attempt; their fallback polls are >= 1.8 s away.
    const before = await calls(inspector);
    await holder.release();
    await waitFor(() => order.length === 1, {
      what: 'the first waiter has the lock',
      timeout: 1_000,
      interval: 2,
    });
    await delay(200);
    const attempts = (await calls(inspector)) - before;
    expect(attempts, 'the release script alone: the waiter holds from the message, no herd').toBe(
      1,
    );
    expect(await inspector.zcard(holder.queueKey)).toBe(7);

    for (let k = 1; k < 8; k++) {
      gate.shift()?.();
      await waitFor(() => order.length === k + 1, {
        what: `waiter #${k} has the lock`,
        timeout: 1_000,
        interval: 2,
      });
    }
    gate.shift()?.();
    await Promise.all(done);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(await inspector.exists(holder.queueKey)).toBe(0);
  });

  it('a dead waiter at the head of the queue (nobody listens on its channel) does not stall the line', async ({
    expect,
    onTestFinished,
  }) => {
    // The holder's client is the inspector.
    const { client: connect, inspector: client, queued } = redis.setUp(onTestFinished);
    const name = uniqueName('dead-waiter');
    const holder = new RedisLock(name, { client, expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const waiterClient = connect();
    const waiter = new RedisLock(name, { client: waiterClient, ...SLOW_POLLING });
    const acquired = waiter.acquire().then(() => now());
    await queued(holder.queueKey, 1, 'waiter queued');
    // A waiter whose process died: first in line, its channel has no subscriber.
    await client.zadd(holder.queueKey, 0, 'p sherlock:wake:dead-process 0 dead-token 30000');
    await holder.release();
    const releasedAt = now();
    const gap = (await acquired) - releasedAt;
    expect(gap, 'woken by the release, not by its 2 s poll').toBeLessThan(HANDOFF_LIMIT_MS);
    expect(await client.exists(holder.queueKey), 'the dead entry was dropped').toBe(0);
    await waiter.release();
  });

  it('a waiter that gives up leaves the queue; one granted just before it gave up passes the lock on', async ({
    expect,
    onTestFinished,
  }) => {
    // The holder's client is the inspector.
    const { client: connect, inspector: client, queued } = redis.setUp(onTestFinished);
    const name = uniqueName('leaver');
    const holder = new RedisLock(name, { client, expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const quitterClient = connect();
    const quitter = new RedisLock(name, { client: quitterClient, ...SLOW_POLLING });
    const controller = new AbortController();
    const quit = rejectionOf(quitter.acquire({ signal: controller.signal }));
    await queued(holder.queueKey, 1, 'quitter queued');
    const waiterClient = connect();
    const waiter = new RedisLock(name, { client: waiterClient, ...SLOW_POLLING });
    const acquired = waiter.acquire().then(() => now());
    await queued(holder.queueKey, 2, 'waiter queued');

    // The release pops the quitter (first in line), which gives up at the same moment.
    await holder.release();
    controller.abort();
    const releasedAt = now();
    expect(await quit).toBeInstanceOf(LockAbortedError);
    const gap = (await acquired) - releasedAt;
    expect(gap, 'the grant was passed on, not left to the 2 s poll').toBeLessThan(HANDOFF_LIMIT_MS);
    await waiter.release();
    await waitFor(async () => (await client.exists(holder.queueKey)) === 0, { what: 'queue gone' });
  });
});

describe.concurrent('memory: first come, first served', () => {
  it('5 waiters get the lock in the order they queued; a newcomer trying at each hand-off never cuts in', async ({
    expect,
  }) => {
    const store = new MemoryStore();
    const name = 'fifo';
    const holder = new MemoryLock(name, { client: store });
    // Someone who does not queue: tries right as each release frees the lock (see the next test).
    const newcomer = new MemoryLock(name, { client: store });
    const cutIns: boolean[] = [];
    /** Releases `lock` with the newcomer's attempt right behind the release's delete. */
    const releaseAndTryToCutIn = async (lock: MemoryLock) => {
      const released = lock.release();
      const attempt = newcomer.acquire(false);
      await released;
      cutIns.push(await attempt);
      if (newcomer.isAcquired) await newcomer.release();
    };
    expect(await holder.acquire(false)).toBe(true);

    const order: number[] = [];
    const done: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) {
      const lock = new MemoryLock(name, { client: store, ...SLOW_POLLING });
      done.push(
        lock.acquire().then(async (ok) => {
          expect(ok).toBe(true);
          order.push(i);
          await delay(10);
          await releaseAndTryToCutIn(lock);
        }),
      );
      await delay(20); // queue them in order
    }
    const start = now();
    await releaseAndTryToCutIn(holder);
    await Promise.all(done);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    // Each release woke the next in line (polling at retryInterval would take 5 s per waiter).
    expect(now() - start).toBeLessThan(3 * HANDOFF_LIMIT_MS);
    // While someone waited in line, the newcomer always lost; after the last one, it got in.
    expect(cutIns).toEqual([false, false, false, false, false, true]);
  });

  it('acquire(false) while a waiter is queued gets false at the very moment the lock is free; without a queue it gets it (the control case)', async ({
    expect,
  }) => {
    const store = new MemoryStore();
    const holder = new MemoryLock('instant', { client: store });
    const waiter = new MemoryLock('instant', { client: store, ...SLOW_POLLING });
    const newcomer = new MemoryLock('instant', { client: store });

    // Control: no queue. The release's delete and the newcomer's attempt run back to back.
    expect(await holder.acquire(false)).toBe(true);
    let released = holder.release();
    let attempt = newcomer.acquire(false);
    await released;
    expect(await attempt).toBe(true);
    await newcomer.release();

    // With a waiter in line, the same interleaving: the lock is free, but the line goes first.
    expect(await holder.acquire(false)).toBe(true);
    const waiting = waiter.acquire();
    await delay(20);
    released = holder.release();
    attempt = newcomer.acquire(false);
    await released;
    expect(await attempt).toBe(false);
    expect(await waiting).toBe(true);
    await waiter.release();
  });

  it('a waiter that times out or is aborted leaves the line: the next one gets the lock right after the release', async ({
    expect,
  }) => {
    const store = new MemoryStore();
    const name = 'leaving';
    const holder = new MemoryLock(name, { client: store });
    expect(await holder.acquire(false)).toBe(true);
    const impatient = new MemoryLock(name, { client: store, retryInterval: 5_000, timeout: 200 });
    const aborted = new MemoryLock(name, { client: store, ...SLOW_POLLING });
    const patient = new MemoryLock(name, { client: store, ...SLOW_POLLING });
    const controller = new AbortController();

    const timedOut = rejectionOf(impatient.acquire());
    await delay(10);
    const cancelled = rejectionOf(aborted.acquire({ signal: controller.signal }));
    await delay(10);
    const acquired = patient.acquire().then((ok) => ({ ok, at: now() }));
    await delay(10);
    controller.abort();
    expect(await timedOut).toBeInstanceOf(LockTimeoutError);
    expect(await cancelled).toBeInstanceOf(LockAbortedError);

    await delay(300);
    await holder.release();
    const releasedAt = now();
    const { ok, at } = await acquired;
    expect(ok).toBe(true);
    expect(at - releasedAt).toBeLessThan(HANDOFF_LIMIT_MS);
    await patient.release();
  });
});

describe.concurrent('etcd: first come, first served (the concurrency.Mutex queue)', () => {
  const entries = async (lock: { key: string }) =>
    (await etcdInspector().getAll().prefix(`${lock.key}\u001f`).keys()).length;

  it('5 waiters get the lock in the order they queued; a newcomer trying right after each release never cuts in', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const name = uniqueName('etcd-fifo');
    const holder = lock('etcd', name);
    const newcomer = lock('etcd', name);
    const cutIns: boolean[] = [];
    // One newcomer attempt at a time (one lock object): each release waits until the previous
    // attempt is over, which on a loaded machine can take longer than a holder's 10 ms.
    let previous: Promise<void> = Promise.resolve();
    const releaseAndTryToCutIn = (held: { release(): Promise<void> }): Promise<void> => {
      const before = previous;
      const mine = (async () => {
        await before;
        await held.release();
        cutIns.push(await newcomer.acquire(false));
        if (newcomer.isAcquired) await newcomer.release();
      })();
      previous = mine;
      return mine;
    };
    expect(await holder.acquire(false)).toBe(true);

    const order: number[] = [];
    const done: Promise<void>[] = [];
    for (let i = 0; i < 5; i++) {
      const waiter = lock('etcd', name, SLOW_POLLING);
      done.push(
        waiter.acquire().then(async (ok) => {
          expect(ok).toBe(true);
          order.push(i);
          await delay(10);
          await releaseAndTryToCutIn(waiter);
        }),
      );
      await waitFor(async () => (await entries(holder)) === i + 2, { what: `waiter ${i} in line` });
    }
    const start = now();
    await releaseAndTryToCutIn(holder);
    await Promise.all(done);
    expect(order).toEqual([0, 1, 2, 3, 4]);
    // Each release woke the next in line: polling at retryInterval would take 5 s per waiter
    // (25 s); each step here is a few etcd writes, slow on a loaded machine, hence 10 s.
    expect(now() - start).toBeLessThan(10 * HANDOFF_LIMIT_MS);
    expect(cutIns).toEqual([false, false, false, false, false, true]);
    expect(await entries(holder)).toBe(0);
  });

  it('waiters that time out or are aborted leave the line: the one behind them gets the lock right after the release', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const name = uniqueName('etcd-leaving');
    const holder = lock('etcd', name);
    expect(await holder.acquire(false)).toBe(true);
    const impatient = lock('etcd', name, { retryInterval: 5_000, timeout: 1_000 });
    const aborted = lock('etcd', name, SLOW_POLLING);
    const patient = lock('etcd', name, SLOW_POLLING);
    const controller = new AbortController();

    const timedOut = rejectionOf(impatient.acquire());
    await waitFor(async () => (await entries(holder)) === 2, { what: 'impatient in line' });
    const cancelled = rejectionOf(aborted.acquire({ signal: controller.signal }));
    await waitFor(async () => (await entries(holder)) === 3, { what: 'aborted in line' });
    const acquired = patient.acquire().then((ok) => ({ ok, at: now() }));
    await waitFor(async () => (await entries(holder)) === 4, { what: 'patient in line' });
    controller.abort();
    expect(await timedOut).toBeInstanceOf(LockTimeoutError);
    expect(await cancelled).toBeInstanceOf(LockAbortedError);
    await waitFor(async () => (await entries(holder)) === 2, { what: 'the two left the line' });

    await holder.release();
    const releasedAt = now();
    const { ok, at } = await acquired;
    expect(ok).toBe(true);
    expect(at - releasedAt).toBeLessThan(HANDOFF_LIMIT_MS);
    await patient.release();
  });
});
