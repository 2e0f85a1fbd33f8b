/**
 * Redis Sentinel failover under the chaos checker (slow: `npm run test:slow`). A master, one
 * replica and three Sentinels of our own (test/support/sentinel.ts); three worker processes take
 * turns on one lock through a `redis+sentinel://` URL while the master is SIGKILLed several times,
 * each time right after a worker was granted the lock (the worst moment: the grant's write has
 * the least time to reach the replica). Counted: overlaps (two holders at once, the lock's key
 * lost with the master), token regressions, lost updates, and how long locking stopped. Once
 * without and once with `waitForReplicas`. Then the loss made certain: the replica is held back
 * (SIGSTOP, its link filled with 20 MB) when the lock is granted and the master killed; without
 * `waitForReplicas` the promoted replica has no lock and a second client takes it too, with it
 * the grant is refused (ReplicaAckError) and nobody holds what the failover loses.
 * The figures go to RELIABILITY.md and docs/sentinel.md.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import { Redis } from 'ioredis';
import { LockBackendError, RedisLock, ReplicaAckError, waitForReplicas } from 'nestjs-sherlock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { MASTER_NAME, type SentinelGroup, startSentinelGroup } from '../support/sentinel.js';
import { redisCommand } from '../support/servers.js';
import { runChaos } from './harness.js';

const KILLS = 3;
/** The workers' lock expiry: a holder whose release went to the dead master holds until then. */
const EXPIRE = 5_000;

describe('Redis Sentinel: the master SIGKILLed under load', { timeout: 240_000 }, () => {
  let group: SentinelGroup;
  const clients: Redis[] = [];
  const client = () => {
    const made = new Redis({
      sentinels: group.addresses,
      name: MASTER_NAME,
      maxRetriesPerRequest: 1,
      retryStrategy: (times: number) => Math.min(times * 100, 1_000),
    });
    made.on('error', () => undefined);
    clients.push(made);
    return made;
  };

  beforeAll(async () => {
    group = await startSentinelGroup();
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await group?.stop();
  });

  it.for([
    ['without waitForReplicas', ''],
    ['with waitForReplicas { replicas: 1, timeout: 100 }', '?waitForReplicas=1&waitTimeout=100'],
  ] as const)(
    `%s: ${KILLS} failovers, each right after a grant; overlaps counted, locking resumes`,
    async ([label, query]) => {
      await group.settled();
      const { report, records, facts } = await runChaos({
        scenario: `sentinel-failover${query ? '-wait' : ''}`,
        backend: 'redis',
        address: `${group.url}${query}`,
        workers: 3,
        sections: 100_000,
        durationMs: 20_000 * KILLS + 5_000,
        expire: EXPIRE,
        operationTimeout: 2_000,
        during: async (run) => {
          const kills: number[] = [];
          const promotions: number[] = [];
          for (let k = 0; k < KILLS; k++) {
            await sleep(1_500);
            await run.nextAcquired();
            const { killed, promotedAfter } = await group.killMaster();
            kills.push(run.now() - promotedAfter);
            promotions.push(Math.round(promotedAfter));
            await group.revive(killed);
            await group.settled();
          }
          run.facts['kills'] = kills;
          run.facts['promotedAfterMs'] = promotions;
        },
      });
      const kills = facts['kills'] as number[];
      const starts = records.flatMap((r) => (r.kind === 'section' ? [r.start] : [])).sort();
      // Time to recover: from each kill to the first section that started after it.
      const recovered = kills.map((at) => {
        const next = starts.find((start) => start > at);
        return next === undefined ? Number.NaN : Math.round(next - at);
      });
      const unreleased = records.filter((r) => r.kind === 'section' && !r.released).length;
      console.log(
        `sentinel chaos ${label}: ${report.sections} sections (${unreleased} releases failed), ${KILLS} master kills (new master named after ${JSON.stringify(facts['promotedAfterMs'])} ms), locking again after ${JSON.stringify(recovered)} ms; overlaps ${report.overlaps}, token regressions ${report.tokenRegressions}, lost updates ${report.lostUpdates}, backend errors ${report.backendErrors}, timeouts ${report.timeouts}`,
      );
      expect(kills).toHaveLength(KILLS);
      // At worst: the failover, the expiry of a lock whose release went to the dead master, and
      // (with waitForReplicas) the revived old master's resync as the new master's replica.
      expect(
        recovered.every((ms) => ms > 0 && ms < EXPIRE + 20_000),
        'locking resumed',
      ).toBe(true);
      expect(report.sections).toBeGreaterThan(10 * KILLS);
      // The guarantee measured, not promised: with waitForReplicas an acknowledged grant
      // survives the failover; without it, a grant may be lost (counted, see RELIABILITY.md).
      if (query) {
        expect(report.examples).toEqual([]);
        expect(report.overlaps).toBe(0);
        expect(report.lostUpdates).toBe(0);
      }
    },
  );

  it('the cost of waitForReplicas: uncontended acquire + release, side by side in one run (figures only)', async () => {
    await group.settled();
    const plain = client();
    const waiting = waitForReplicas(client(), { replicas: 1, timeout: 100 });
    const round = async (c: Redis, n: number) => {
      const lock = new RedisLock(uniqueName('sentinel-cost'), { client: c, expire: 10_000 });
      const began = performance.now();
      for (let i = 0; i < n; i++) {
        expect(await lock.acquire(false)).toBe(true);
        await lock.release();
      }
      return (performance.now() - began) / n;
    };
    await round(plain, 50);
    await round(waiting, 50);
    const ms = { plain: [] as number[], wait: [] as number[] };
    for (let r = 0; r < 3; r++) {
      ms.plain.push(await round(plain, 300));
      ms.wait.push(await round(waiting, 300));
    }
    const median = (v: number[]) => [...v].sort((a, b) => a - b)[1] ?? 0;
    console.log(
      `sentinel waitForReplicas cost: acquire+release ${median(ms.plain).toFixed(3)} ms without, ${median(ms.wait).toFixed(3)} ms with (x${(median(ms.wait) / median(ms.plain)).toFixed(2)}), medians of 3 rounds of 300`,
    );
  });

  /**
   * Holds the replica back: SIGSTOP, then 20 MB written on the master fill the replication
   * link's socket buffers, so that what is written next stays in the master's memory.
   */
  const holdBackReplica = async () => {
    await group.settled();
    const master = await group.master();
    const replica = group.nodes.find((node) => node !== master);
    if (!replica) throw new Error('no replica');
    replica.pause();
    const junk = 'x'.repeat(1 << 20);
    for (let i = 0; i < 20; i++) {
      await redisCommand({ port: master.port }, ['SET', `sentinel-junk-${i}`, junk], 5_000);
    }
    return { master, replica };
  };
  /** SIGKILLs the master, lets the replica go on (it is promoted), revives the old master. */
  const failover = async (replica: { resume(): void }) => {
    const killing = group.killMaster();
    await sleep(100);
    replica.resume();
    const { killed, promotedAfter } = await killing;
    return { killed, promotedAfter };
  };

  it('a grant the replica never got: without waitForReplicas it is lost with the master (a second holder), with it the acquire fails with ReplicaAckError', async () => {
    // Without: granted, then lost.
    const name = uniqueName('sentinel-lost');
    const first = new RedisLock(name, { client: client(), expire: 60_000 });
    let held = await holdBackReplica();
    expect(await first.acquire(false)).toBe(true);
    let done = await failover(held.replica);
    const second = new RedisLock(name, { client: client(), expire: 60_000 });
    let taken = false;
    for (let i = 0; i < 100 && !taken; i++) {
      taken = await second.acquire(false).catch(() => false);
      if (!taken) await sleep(100);
    }
    console.log(
      `sentinel lost grant: new master after ${done.promotedAfter.toFixed(0)} ms; a second client took the lock the first still holds: ${taken}`,
    );
    expect(taken, 'the grant was lost with the master: a second holder').toBe(true);
    expect(first.isAcquired, 'the first still believes it holds').toBe(true);
    await second.release();
    await first.release().catch(() => undefined);
    await group.revive(done.killed);

    // With: the acquire is refused, and nothing is left for the failover to lose.
    const waiting = waitForReplicas(client(), { replicas: 1, timeout: 200 });
    const safe = new RedisLock(uniqueName('sentinel-wait'), { client: waiting, expire: 60_000 });
    held = await holdBackReplica();
    const error = await safe.acquire(false).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(LockBackendError);
    expect((error as LockBackendError).cause).toBeInstanceOf(ReplicaAckError);
    expect(safe.isAcquired).toBe(false);
    done = await failover(held.replica);
    await group.revive(done.killed);
    await group.settled();
    expect(await safe.acquire({ timeout: 20_000 }), 'granted again once replicated').toBe(true);
    await safe.release();
  });
});
