/**
 * Redis Sentinel (docs/sentinel.md): a master, one replica and three Sentinels of our own
 * (test/support/sentinel.ts). Locks through both connection forms, a hand-off, `waitForReplicas`
 * (WAIT after the writes that grant) with the replica answering and then hung, and, last, the
 * master SIGKILLed: the Sentinels promote the replica, the lock keeps working, and a waiter that
 * was queued before the kill gets the lock after the release that follows.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import { Redis } from 'ioredis';
import { LockBackendError, LockManager, RedisLock, ReplicaAckError } from 'nestjs-sherlock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { cli } from '../support/cli.js';
import { runLocked, sentinelClient, sentinelManager } from './sentinel.example.js';
import { MASTER_NAME, type SentinelGroup, startSentinelGroup } from '../support/sentinel.js';
import { redisCommand } from '../support/servers.js';

/** A waiter that is never woken by its poll within the test: only a message wakes it. */
const SLOW_POLLING = { retryInterval: 20_000, timeout: 40_000 };

describe('Redis Sentinel: master, replica, 3 Sentinels', () => {
  let group: SentinelGroup;
  const managers: LockManager[] = [];
  const clients: Redis[] = [];
  const manager = (connection: unknown) => {
    const made = new LockManager({
      backend: 'redis',
      connection: connection as string,
      expire: 30_000,
    });
    managers.push(made);
    return made;
  };
  const client = () => {
    const made = new Redis({
      sentinels: group.addresses,
      name: MASTER_NAME,
      maxRetriesPerRequest: 1,
    });
    made.on('error', () => undefined);
    clients.push(made);
    return made;
  };

  beforeAll(async () => {
    group = await startSentinelGroup();
  });
  afterAll(async () => {
    await Promise.all(managers.map((m) => m.close().catch(() => undefined)));
    for (const c of clients) c.disconnect();
    await group?.stop();
  });

  it('locks through the URL form and the options form, on the master; a release hands the lock to a waiter of another client', async () => {
    const byUrl = manager(group.url);
    // docs/sentinel.md's example (the options form, with waitForReplicas).
    const byOptions = sentinelManager(group.addresses);
    managers.push(byOptions);
    const name = uniqueName('sentinel');
    const holder = byUrl.lock(name);
    const waiter = byOptions.lock(name, SLOW_POLLING);
    expect(await holder.acquire(false)).toBe(true);
    const master = await group.masterPort();
    expect(await redisCommand({ port: master }, ['EXISTS', name]), 'on the master').toBe(1);
    // The CLI reaches the same lock through the Sentinels' URL.
    const inspected = await cli(['inspect', name, '--json', '--url', group.url]);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ name, held: true, backend: 'redis' });
    expect(await waiter.acquire(false)).toBe(false);
    const acquired = waiter.acquire().then(() => performance.now());
    await sleep(300);
    await holder.release();
    const waited = (await acquired) - performance.now();
    expect(-waited, 'woken by the release, not by its 20 s poll').toBeLessThan(10_000);
    expect(BigInt(waiter.fencingToken ?? -1)).toBeGreaterThan(BigInt(holder.fencingToken ?? -1));
    await waiter.release();
    expect(await byOptions.lock(name).locked()).toBe(false);
  });

  it('waitForReplicas: granted once the replica acknowledged; with the replica hung, the acquire fails with ReplicaAckError, leaves the lock free, and a blocking acquire gets it once the replica is back', async () => {
    const waiting = sentinelClient(group.addresses); // docs/sentinel.md's example
    clients.push(waiting);
    waiting.on('error', () => undefined);
    const viaManager = sentinelManager(group.addresses);
    managers.push(viaManager);
    let worked = 0;
    const work = async () => void worked++;
    expect(await runLocked(viaManager.lock(uniqueName('sentinel-run')), work)).toBe('done');
    const name = uniqueName('sentinel-wait');
    const lock = new RedisLock(name, { client: waiting, expire: 30_000 });
    expect(await lock.acquire(false)).toBe(true);
    await lock.extend(40_000);
    // A hand-off with WAIT: the waiter confirms the grant with its own write, then WAITs.
    const other = new RedisLock(name, { client: waiting, ...SLOW_POLLING });
    const handed = other.acquire();
    await sleep(300);
    await lock.release();
    await handed;
    expect(await other.locked()).toBe(true);
    await other.release();

    const master = await group.master();
    const toHang = group.nodes.find((node) => node !== master);
    if (!toHang) throw new Error('no replica');
    toHang.pause();
    try {
      const error = await lock.acquire(false).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(LockBackendError);
      const cause = (error as LockBackendError).cause;
      expect(cause).toBeInstanceOf(ReplicaAckError);
      expect((cause as ReplicaAckError).acknowledged).toBe(0);
      expect(String((cause as Error).message)).toMatch(/WAIT 1 100: only 0 replica/);
      expect(await runLocked(viaManager.lock(uniqueName('sentinel-run')), work)).toBe(
        'not replicated',
      );
      expect(worked, 'the work ran once, before the replica hung').toBe(1);
      expect(lock.isAcquired, 'never reported as acquired').toBe(false);
      expect(await new RedisLock(name, { client: client() }).locked(), 'given back').toBe(false);
      // A blocking acquire keeps trying: it gets the lock once the replica answers again.
      const blocking = lock.acquire({ timeout: 20_000 });
      await sleep(1_000);
      toHang.resume();
      await blocking;
      expect(lock.isAcquired).toBe(true);
    } finally {
      if (toHang.paused) toHang.resume();
    }
    await lock.release();
  });

  it('the master SIGKILLed: the replica is promoted, the lock works again, and a waiter queued before the kill gets the lock after the release', async () => {
    await group.settled();
    const holders = manager(group.url);
    const waiters = manager({ sentinels: group.addresses, name: MASTER_NAME });
    const name = uniqueName('sentinel-failover');
    const holder = holders.lock(name);
    // An attempt of the waiter's that fails while there is no master makes it poll at its
    // retryInterval (not listening) until an attempt is answered; one that does not fail is
    // woken when its client's connections are back, or granted by the release.
    const waiter = waiters.lock(name, { retryInterval: 3_000, timeout: 40_000 });
    expect(await holder.acquire(false)).toBe(true);
    const acquired = waiter.acquire().then(() => performance.now());
    // The waiter's entry is in the queue, and the replica has it all.
    for (let i = 0; ; i++) {
      const port = await group.masterPort();
      const offsets = String(await redisCommand({ port }, ['INFO', 'replication']));
      const queued = await redisCommand({ port }, ['EXISTS', (holder as RedisLock).queueKey]);
      const master = Number(/master_repl_offset:(\d+)/u.exec(offsets)?.[1]);
      const replica = Number(/slave0:.*offset=(\d+)/u.exec(offsets)?.[1]);
      if (queued === 1 && master === replica) break;
      if (i > 100) throw new Error('the waiter did not queue, or the replica lags');
      await sleep(50);
    }

    const { killed, promoted, promotedAfter } = await group.killMaster();
    // A loop of attempts from another client: the first success after the kill.
    const probe = holders.lock(uniqueName('sentinel-probe'), { operationTimeout: 1_000 });
    const killedAt = performance.now() - promotedAfter;
    let recoveredAfter = -1;
    for (let i = 0; i < 300; i++) {
      if (await probe.acquire(false).catch(() => false)) {
        recoveredAfter = performance.now() - killedAt;
        await probe.release();
        break;
      }
      await sleep(100);
    }
    expect(recoveredAfter, 'locking works again after the failover').toBeGreaterThan(0);
    expect(promoted.port).not.toBe(killed.port);

    // The holder still holds (its key was replicated): its release goes to the new master and
    // grants the waiter, whose subscriber connection followed the failover.
    expect(await holder.locked()).toBe(true);
    const releasedAt = performance.now();
    await holder.release();
    const handedAfter = (await acquired) - releasedAt;
    console.log(
      `sentinel failover: new master named ${promotedAfter.toFixed(0)} ms after the SIGKILL, locking again after ${recoveredAfter.toFixed(0)} ms; the queued waiter got the lock ${handedAfter.toFixed(0)} ms after the release`,
    );
    expect(handedAfter, 'granted by the release, or at its next poll (3 s)').toBeLessThan(10_000);
    expect(BigInt(waiter.fencingToken ?? -1)).toBeGreaterThan(BigInt(holder.fencingToken ?? -1));
    await waiter.release();
    await group.revive(killed);
  });
});
