/**
 * Beyond one server: a Redis Cluster of three masters, and etcd with three members whose leader
 * is killed in the middle of a multi-process run (checked by the chaos checker).
 */
import { setTimeout as sleep } from 'node:timers/promises';

import { Etcd3 } from 'etcd3';
import { Cluster } from 'ioredis';
import { EtcdLock, LockManager, RedisLock } from 'nestjs-sherlock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { runChaos } from '../chaos/harness.js';
import { uniqueName } from '../support/backends.js';
import {
  type EtcdCluster,
  type RedisCluster,
  startEtcdCluster,
  startRedisCluster,
} from '../support/clusters.js';
import { redisCommand } from '../support/servers.js';

const SLOW_POLLING = { retryInterval: 5_000, timeout: 10_000 };

describe('Redis Cluster, three masters', () => {
  let cluster: RedisCluster;
  const clients: Cluster[] = [];
  const connect = () => {
    const client = new Cluster(cluster.startupNodes);
    clients.push(client);
    return client;
  };
  /** slot → port of the master serving it. */
  let owners: Map<number, number>;
  const slotOf = async (key: string) =>
    Number(
      await redisCommand({ host: '127.0.0.1', port: cluster.nodes[0]?.port ?? 0 }, [
        'CLUSTER',
        'KEYSLOT',
        key,
      ]),
    );

  beforeAll(async () => {
    cluster = await startRedisCluster();
    const slots = (await redisCommand({ host: '127.0.0.1', port: cluster.nodes[0]?.port ?? 0 }, [
      'CLUSTER',
      'SLOTS',
    ])) as [number, number, [string, number]][];
    owners = new Map();
    for (const [from, to, [, port]] of slots) for (let s = from; s <= to; s++) owners.set(s, port);
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await cluster?.stop();
  });

  it('locks on names spread over all 3 masters: key, fencing counter and queue in one slot; acquire, extend, release, tokens increasing', async () => {
    const client = connect();
    const mastersUsed = new Set<number>();
    for (let i = 0; i < 30; i++) {
      const name = i % 3 === 0 ? `{tag${i}}-${uniqueName()}` : uniqueName('cl');
      const lock = new RedisLock(name, { client, namespace: i % 2 ? 'ns' : null, expire: 10_000 });
      const slot = await slotOf(lock.key);
      expect(await slotOf(lock.fencingKey)).toBe(slot);
      expect(await slotOf(lock.queueKey)).toBe(slot);
      mastersUsed.add(owners.get(slot) ?? -1);
      const tokens: bigint[] = [];
      for (let round = 0; round < 2; round++) {
        expect(await lock.acquire(false)).toBe(true);
        tokens.push(BigInt(lock.fencingToken ?? -1));
        await lock.extend(20_000);
        expect(await lock.locked()).toBe(true);
        await lock.release();
      }
      expect(tokens[1]).toBeGreaterThan(tokens[0] ?? 0n);
      expect(await lock.locked()).toBe(false);
    }
    expect(mastersUsed.size, 'names landed on every master').toBe(3);
  });

  it('hand-off between two Cluster clients: the waiter (retryInterval 5000) is woken by the release', async () => {
    const holderClient = connect();
    const waiterClient = connect();
    for (let i = 0; i < 3; i++) {
      const name = uniqueName(`cl-handoff-${i}`);
      const holder = new RedisLock(name, { client: holderClient, expire: 30_000 });
      const waiter = new RedisLock(name, { client: waiterClient, ...SLOW_POLLING });
      expect(await holder.acquire(false)).toBe(true);
      const acquired = waiter.acquire().then(() => performance.now());
      await sleep(300);
      await holder.release();
      const gap = (await acquired) - performance.now();
      const waited = -gap;
      expect(waited, 'woken by the release, not by its 5 s poll').toBeLessThan(1_500);
      expect(BigInt(waiter.fencingToken ?? -1)).toBeGreaterThan(0n);
      await waiter.release();
    }
  });

  it('direct grant over sharded pub/sub: each release SPUBLISHes once, on the master owning the slot, and wakes exactly one waiter (no attempt by anyone else), in queue order, on all 3 masters', async () => {
    const holderClient = connect();
    const waiterClients = [connect(), connect()];
    const stats = async () => {
      const counts = new Map<number, { spublish: number; publish: number; evalsha: number }>();
      for (const node of cluster.nodes) {
        const info = String(
          await redisCommand({ host: '127.0.0.1', port: node.port }, ['INFO', 'commandstats']),
        );
        const count = (command: string) =>
          Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0);
        counts.set(node.port, {
          spublish: count('spublish'),
          publish: count('publish'),
          evalsha: count('evalsha') + count('eval'),
        });
      }
      return counts;
    };
    const mastersUsed = new Set<number>();
    let releases = 0;
    // Two names on each master.
    const names: string[] = [];
    const perMaster = new Map<number, number>();
    for (let n = 0; names.length < 6; n++) {
      const name = uniqueName(`cl-grant-${n}`);
      const master = owners.get(await slotOf(new RedisLock(name, { client: holderClient }).key));
      if (master === undefined || (perMaster.get(master) ?? 0) >= 2) continue;
      perMaster.set(master, (perMaster.get(master) ?? 0) + 1);
      names.push(name);
    }
    for (const name of names) {
      const holder = new RedisLock(name, { client: holderClient, expire: 30_000 });
      const owner = owners.get(await slotOf(holder.key)) ?? -1;
      mastersUsed.add(owner);
      // Once uncontended first, so that the scripts are loaded (no NOSCRIPT round in the counts).
      expect(await holder.acquire(false)).toBe(true);
      await holder.release();
      expect(await holder.acquire(false)).toBe(true);
      const order: number[] = [];
      const gates: (() => void)[] = [];
      const done: Promise<void>[] = [];
      for (let i = 0; i < 4; i++) {
        const waiter = new RedisLock(name, {
          client: waiterClients[i % 2] as Cluster,
          ...SLOW_POLLING,
        });
        done.push(
          waiter.acquire().then(async () => {
            order.push(i);
            await new Promise<void>((resolve) => gates.push(resolve));
            await waiter.release();
          }),
        );
        for (let t = 0; ; t++) {
          const entries = (await redisCommand({ host: '127.0.0.1', port: owner }, [
            'ZRANGE',
            holder.queueKey,
            0,
            -1,
          ])) as string[];
          if (entries.length === i + 1) {
            expect(entries[i]?.split(' ')[0], 'a sharded pub/sub entry').toBe('s');
            break;
          }
          if (t > 200) throw new Error(`waiter ${i} did not queue`);
          await sleep(10);
        }
      }
      // Each release (the holder's, then each waiter's) grants the next: 4 grants.
      let release: () => unknown = () => holder.release();
      for (let k = 0; k < 4; k++) {
        const before = await stats();
        await release();
        releases++;
        for (let t = 0; order.length < k + 1; t++) {
          if (t > 100) throw new Error(`grant ${k} did not arrive`);
          await sleep(10);
        }
        await sleep(50); // any stray attempt would show now
        const after = await stats();
        for (const [port, was] of before) {
          const is = after.get(port);
          const mine = port === owner;
          expect(is?.spublish, `SPUBLISH on ${port}`).toBe(was.spublish + (mine ? 1 : 0));
          expect(is?.publish, `no plain PUBLISH on ${port}`).toBe(was.publish);
          // The release script only: the waiter holds from the message, nobody else attempts.
          expect(is?.evalsha, `scripts on ${port}`).toBe(was.evalsha + (mine ? 1 : 0));
        }
        release = () => gates.shift()?.();
      }
      release();
      await Promise.all(done);
      expect(order).toEqual([0, 1, 2, 3]);
    }
    expect(mastersUsed.size, 'names landed on every master').toBe(3);
    console.log(`redis cluster: ${releases} releases, each one SPUBLISH and one wake-up`);
  });

  it('semaphores on names spread over all 3 masters (every script touches one slot): limit, release, hand-off between Cluster clients, tokens increasing', async () => {
    const holders = new LockManager({ backend: 'redis', client: connect(), expire: 30_000 });
    const waiters = new LockManager({ backend: 'redis', client: connect(), ...SLOW_POLLING });
    const mastersUsed = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const name = i % 3 === 0 ? `{tag${i}}-${uniqueName()}` : uniqueName('cl-sem');
      const options = { namespace: i % 2 ? 'ns' : null };
      const [a, b] = [holders.semaphore(name, 2, options), holders.semaphore(name, 2, options)];
      if (!a || !b) throw new Error('two semaphores');
      mastersUsed.add(owners.get(await slotOf(a.key)) ?? -1);
      expect(await a.acquire(false)).toBe(true);
      expect(await b.acquire(false)).toBe(true);
      await a.extend(20_000);
      const waiter = waiters.semaphore(name, 2, options);
      expect(await waiter.acquire(false)).toBe(false);
      expect(await waiter.count()).toBe(2);
      const acquired = waiter.acquire().then(() => performance.now());
      await sleep(300);
      await a.release();
      const releasedAt = performance.now();
      expect((await acquired) - releasedAt, 'woken by the release').toBeLessThan(1_500);
      expect(BigInt(waiter.fencingToken ?? -1)).toBeGreaterThan(BigInt(b.fencingToken ?? -1));
      await b.release();
      await waiter.release();
      expect(await waiter.count()).toBe(0);
    }
    expect(mastersUsed.size, 'names landed on every master').toBe(3);
    await holders.close();
    await waiters.close();
  });
});

describe('etcd, three members', () => {
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await startEtcdCluster();
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('locks through a client of all three members: acquire, extend, release, hand-off, tokens increasing', async () => {
    const a = new Etcd3({ hosts: etcd.hosts });
    const b = new Etcd3({ hosts: etcd.hosts });
    try {
      const name = uniqueName('etcd3m');
      const holder = new EtcdLock(name, { client: a, expire: 5_000 });
      const waiter = new EtcdLock(name, { client: b, ...SLOW_POLLING });
      expect(await holder.acquire(false)).toBe(true);
      await holder.extend();
      const first = BigInt(holder.fencingToken ?? -1);
      const acquired = waiter.acquire().then(() => performance.now());
      await sleep(300);
      await holder.release();
      const releasedAt = performance.now();
      expect((await acquired) - releasedAt).toBeLessThan(1_500);
      expect(BigInt(waiter.fencingToken ?? -1)).toBeGreaterThan(first);
      await waiter.release();
    } finally {
      a.close();
      b.close();
    }
  });

  it('the leader is SIGKILLed in the middle of a 3-process run: no double holder, counter exact, locking resumes', async () => {
    const leader = async () => {
      for (const member of etcd.members) {
        if (!member.running) continue;
        const client = new Etcd3({ hosts: member.url });
        try {
          const status = await client.maintenance.status();
          if (status.leader === status.header.member_id) return member;
        } catch {
          // not answering: not the leader we can kill
        } finally {
          client.close();
        }
      }
      return undefined;
    };
    const { report, records, facts } = await runChaos({
      scenario: 'etcd-3-members-leader-killed',
      backend: 'etcd',
      address: etcd.hosts.join(','),
      workers: 3,
      sections: 100_000,
      durationMs: 12_000,
      expire: 5_000,
      operationTimeout: 2_000,
      during: async (run) => {
        await sleep(2_000);
        const killed = await leader();
        if (!killed) throw new Error('no leader found');
        await killed.kill('SIGKILL');
        run.facts['leaderKilledAt'] = run.now();
        run.facts['leaderPort'] = killed.port;
      },
    });
    const killedAt = Number(facts['leaderKilledAt']);
    expect(report.examples).toEqual([]);
    expect(report.overlaps).toBe(0);
    expect(report.tokenRegressions).toBe(0);
    expect(report.lostUpdates).toBe(0);
    const starts = records.flatMap((r) => (r.kind === 'section' ? [r.start] : []));
    const before = starts.filter((start) => start < killedAt).length;
    const after = starts.filter((start) => start > killedAt);
    const resumedAfter = Math.min(...after) - killedAt;
    console.log(
      `etcd leader killed: ${before} sections before, ${after.length} after; the first ${resumedAfter.toFixed(0)} ms after the kill`,
    );
    expect(before, 'sections before the kill').toBeGreaterThan(5);
    expect(after.length, 'sections once a new leader is elected').toBeGreaterThan(2);
    // At worst a holder's release went to the dead member and its entry waits out its lease.
    expect(resumedAfter).toBeLessThan(5_000 + 5_000);
  });
});
