/**
 * `waitForReplicas` on the Redis semaphore, read-write lock and election (the lock's is in
 * redis-grant-path.spec.ts and test/cluster/sentinel.spec.ts), on real servers of their own: a
 * master with no replica (WAIT 1 answers 0: nothing may be granted on a client that asks for a
 * replica, and nothing stays held), and a master with a replica (`--replicaof`): the grant and the
 * renewals are WAITed for (counted by the master's `INFO commandstats`), and succeed.
 */
import { Redis } from 'ioredis';
import {
  type LeadershipEndedEvent,
  LockAbortedError,
  LockBackendError,
  LockManager,
  ReplicaAckError,
  waitForReplicas,
} from 'nestjs-sherlock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { rejectionOf, waitFor } from '../support/helpers.js';
import { scope } from '../support/locks.js';
import { type RedisServer, startRedis } from '../support/servers.js';

const ACKS = { replicas: 1, timeout: 100 };
/** A waiter that polls rarely: a grant reaches it by message. */
const SLOW_POLLING = { retryInterval: 5_000, timeout: 1_500 };

/** Expects an attempt that failed because no replica acknowledged its grant. */
async function expectNotReplicated(attempt: Promise<unknown>, what: string): Promise<void> {
  const error = await rejectionOf(attempt);
  expect(error, what).toBeInstanceOf(LockBackendError);
  expect(error.cause, what).toBeInstanceOf(ReplicaAckError);
}

describe('redis waitForReplicas: the semaphore, the read-write lock and the election (their own servers)', () => {
  /** A master with no replica. */
  let lonely: RedisServer;
  /** A master with one replica. */
  let primary: RedisServer;
  let replica: RedisServer;
  beforeAll(async () => {
    [lonely, primary] = await Promise.all([startRedis(), startRedis()]);
    replica = await startRedis({ replicaOf: primary });
    const probe = new Redis(primary.url);
    try {
      await waitFor(async () => /slave0:.*state=online/u.test(await probe.info('replication')), {
        what: 'the replica synced',
      });
    } finally {
      probe.disconnect();
    }
  });
  afterAll(async () => {
    await Promise.all([lonely?.stop(), replica?.stop(), primary?.stop()]);
  });

  const setUp = (onTestFinished: Parameters<typeof scope>[0]) => {
    const { defer } = scope(onTestFinished);
    const client = (server: RedisServer) => {
      const made = new Redis(server.url);
      defer(() => made.disconnect());
      return made;
    };
    /** A manager on `server`, its client marked with waitForReplicas when `acks`. */
    const manager = (server: RedisServer, acks = false) => {
      const made = new LockManager({
        backend: 'redis',
        client: acks ? waitForReplicas(client(server), ACKS) : client(server),
        expire: 30_000,
      });
      defer(() => made.close());
      return made;
    };
    /** How many WAIT commands `server` ran so far. */
    const waits = async (server: RedisServer) => {
      const stats = await client(server).info('commandstats');
      return Number(/cmdstat_wait:calls=(\d+)/u.exec(stats)?.[1] ?? 0);
    };
    const inspector = client(lonely);
    /** Whether a waiter is in the line of the semaphore `name` on the lonely master. */
    const queued = async (name: string) => (await inspector.keys(`*semq:*${name}`)).length === 1;
    return { defer, manager, waits, queued };
  };

  it('semaphore, no replica: acquire(false) fails with ReplicaAckError and gives the permit back', async ({
    onTestFinished,
  }) => {
    const { manager } = setUp(onTestFinished);
    const name = uniqueName('sem-acks');
    const acked = manager(lonely, true).semaphore(name, 2);
    await expectNotReplicated(acked.acquire(false), 'acquire(false)');
    expect(acked.isAcquired).toBe(false);
    const plain = manager(lonely).semaphore(name, 1);
    expect(await plain.count(), 'no permit held').toBe(0);
    expect(await plain.acquire(false), 'a plain client takes the only permit at once').toBe(true);
    await plain.release();
  });

  it('semaphore, no replica: a permit a release hands to a waiting acquire is confirmed by its own write, fails, and is given back', async ({
    onTestFinished,
  }) => {
    const { manager, queued } = setUp(onTestFinished);
    const name = uniqueName('sem-acks-handoff');
    const holder = manager(lonely).semaphore(name, 1);
    expect(await holder.acquire(false)).toBe(true);
    const waiter = manager(lonely, true).semaphore(name, 1, SLOW_POLLING);
    const outcome = waiter.acquire();
    await waitFor(() => queued(name), { what: 'the waiter in line' });
    await holder.release();
    await expectNotReplicated(outcome, 'the waiting acquire');
    expect(waiter.isAcquired).toBe(false);
    expect(await holder.count(), 'given back').toBe(0);
    expect(await holder.acquire(false)).toBe(true);
    await holder.release();
  });

  it('read-write lock, no replica: the write and the read side fail with ReplicaAckError and leave the lock free', async ({
    onTestFinished,
  }) => {
    const { manager } = setUp(onTestFinished);
    const name = uniqueName('rw-acks');
    const acked = manager(lonely, true).readWrite(name);
    const plain = manager(lonely).readWrite(name);
    const free = { readers: 0, writer: false, writerWaiting: false };
    for (const side of ['write', 'read'] as const) {
      await expectNotReplicated(acked[side].acquire(false), `${side}.acquire(false)`);
      expect(acked[side].isAcquired, side).toBe(false);
      expect(await plain.state(), side).toEqual(free);
      expect(await plain.write.acquire(false), `${side}: a plain writer gets in at once`).toBe(
        true,
      );
      await plain.write.release();
    }
  });

  it('election, no replica: a campaign is never elected, the election stays free', async ({
    onTestFinished,
  }) => {
    // (The election's lock is the Redis lock, whose acquire WAITed before the other primitives.)
    const { defer, manager } = setUp(onTestFinished);
    const name = uniqueName('election-acks');
    const acked = manager(lonely, true).election(name, { expire: 5_000 });
    defer(() => acked.close());
    const campaign = acked.campaign({ signal: AbortSignal.timeout(1_500) });
    expect(await rejectionOf(campaign)).toBeInstanceOf(LockAbortedError);
    expect(acked.isLeader).toBe(false);
    const plain = manager(lonely).election(name, { expire: 5_000 });
    defer(() => plain.close());
    expect(await plain.leader(), 'nobody leads').toBeNull();
    const { term } = await plain.campaign({ signal: AbortSignal.timeout(5_000) });
    expect(term).toMatch(/^\d+$/u);
  });

  it('with a replica: permits, both sides and leadership are granted, each grant and renewal WAITed for', async ({
    onTestFinished,
  }) => {
    const { defer, manager, waits } = setUp(onTestFinished);
    const name = uniqueName('replicated');
    const locks = manager(primary, true);
    const before = await waits(primary);

    const sem = locks.semaphore(name, 2);
    expect(await sem.acquire(false)).toBe(true);
    await sem.extend();
    await sem.release();

    const rw = locks.readWrite(name);
    expect(await rw.write.acquire(false)).toBe(true);
    await rw.write.extend();
    await rw.write.release();
    expect(await rw.read.acquire(false)).toBe(true);
    await rw.read.extend();
    await rw.read.release();

    const election = locks.election(name, { expire: 5_000 });
    defer(() => election.close());
    await election.campaign({ signal: AbortSignal.timeout(5_000) });
    expect(election.isLeader).toBe(true);
    expect((await election.leader())?.id).toBe(election.id);
    // Semaphore: acquire, extend; read-write: two acquires, two extends; election: the lock's
    // acquire and the proclaim of who leads.
    expect((await waits(primary)) - before).toBeGreaterThanOrEqual(8);
    expect(await election.resign()).toBe(true);
  });

  it('election with a replica: a renewal no replica acknowledges does not count, and the leadership is lost', async ({
    onTestFinished,
  }) => {
    const { defer, manager } = setUp(onTestFinished);
    const locks = manager(primary, true);
    const failures: unknown[] = [];
    locks.on('extend-failed', (event) => failures.push(event.error));
    const election = locks.election(uniqueName('renewal-acks'), {
      expire: 2_000,
      renewEvery: 400,
    });
    defer(() => election.close());
    const { signal } = await election.campaign({ signal: AbortSignal.timeout(5_000) });
    const lost = new Promise<LeadershipEndedEvent>((resolve) => election.once('lost', resolve));
    replica.pause(); // SIGSTOP: WAIT gets no acknowledgement
    defer(() => replica.resume());
    // Lost before the lease (2 s) runs out unless a renewal is acknowledged; wide margin.
    await waitFor(() => signal.aborted, { timeout: 15_000, what: 'the leadership lost' });
    expect((await lost).reason).toBe('lost');
    expect(election.isLeader).toBe(false);
    expect(failures[0], 'the renewal failed').toBeInstanceOf(LockBackendError);
    expect((failures[0] as Error).cause).toBeInstanceOf(ReplicaAckError);
  });
});
