/**
 * A Redis lock's line of waiters lives as long as its holder plus a minute, so that its waiters
 * need not poll to keep it (docs/waiting.md, "Why a Redis lock waiter polls so little"): every
 * waiter's attempt sets the line's expiry to the holder's TTL plus a minute, never earlier than
 * it was, and every waiter attempts again by the TTL it saw; a holder without expiry leaves it
 * to the waiters' attempts, a minute each. A waiter already in line polls without writing, and
 * one whose line was lost queues again at its next attempt. On a real server of its own (its
 * command counts are this file's alone).
 */
import type { Redis } from 'ioredis';
import { RedisLock } from 'nestjs-sherlock';
import { describe, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { waitFor } from '../support/helpers.js';
import { redisOfItsOwn } from '../support/redis-own.js';

/** Waiters that never poll by retryInterval: pushed, with the fallback polls of a kept place. */
const WAITING = { retryInterval: 60_000, timeout: 30_000 };
/** How long a test waits for the first in line's fallback poll (5 s ± 10 %), with room. */
const FIRST_POLL_WITHIN = 15_000;

describe('redis: the line of waiters outlives its holder (its own server)', () => {
  const redis = redisOfItsOwn();

  /** Calls of each command so far (INFO commandstats; a script's own commands included). */
  const calls = async (client: Redis): Promise<Record<string, number>> => {
    const info = await client.info('commandstats');
    const counts: Record<string, number> = {};
    for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
      counts[match[1] as string] = Number(match[2]);
    }
    return counts;
  };

  it('outlives the holder by a minute: set when a waiter queues, pushed by the next poll after an extend, never pulled in; a poll of a waiter in line only reads', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, queued } = redis.setUp(onTestFinished);
    const name = uniqueName('line-ttl');
    const holder = new RedisLock(name, { client: client(), expire: 20_000 });
    expect(await holder.acquire(false)).toBe(true);
    const first = new RedisLock(name, { client: client(), expire: 5_000, ...WAITING });
    const second = new RedisLock(name, { client: client(), ...WAITING });
    const firstDone = first.acquire();
    await queued(holder.queueKey, 1, 'queued');
    const secondDone = second.acquire();
    await queued(holder.queueKey, 2, 'queued');

    const line = await inspector.pttl(holder.queueKey);
    expect(line, 'the holder’s 20 s and a minute').toBeGreaterThan(70_000);
    expect(line).toBeLessThanOrEqual(80_000);

    // The first in line's fallback poll (5 s): an attempt that only reads.
    const polled = async (since: Record<string, number>) => {
      await waitFor(
        async () => ((await calls(inspector))['evalsha'] ?? 0) > (since['evalsha'] ?? 0),
        { timeout: FIRST_POLL_WITHIN, what: 'a fallback poll' },
      );
      return calls(inspector);
    };
    const before = await calls(inspector);
    const after = await polled(before);
    for (const command of ['time', 'zadd', 'pexpire', 'set', 'incr']) {
      expect(after[command] ?? 0, `${command} in a poll of a waiter in line`).toBe(
        before[command] ?? 0,
      );
    }
    expect((after['zrank'] ?? 0) - (before['zrank'] ?? 0), 'the poll read its place').toBe(1);

    // The holder's TTL outgrows the line: the next poll pushes the line past it.
    await holder.extend(200_000);
    expect(await inspector.pttl(holder.queueKey)).toBeLessThanOrEqual(80_000);
    await polled(await calls(inspector));
    expect(await inspector.pttl(holder.queueKey), 'pushed by the poll').toBeGreaterThan(250_000);

    // A grant to `first` (expire 5 s): the line, where `second` waits, is not pulled in.
    await holder.release();
    await firstDone;
    expect(await inspector.zcard(holder.queueKey)).toBe(1);
    expect(await inspector.pttl(holder.queueKey), 'never pulled in').toBeGreaterThan(240_000);

    await first.release();
    await secondDone;
    expect(second.isAcquired).toBe(true);
    expect(await inspector.exists(holder.queueKey), 'the emptied line is gone').toBe(0);
    await second.release();
  });

  it('a holder without expiry: the line expires a minute after its waiters’ last attempt, and their polls renew it', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, queued } = redis.setUp(onTestFinished);
    const name = uniqueName('line-forever');
    const holder = new RedisLock(name, { client: client(), expire: null });
    expect(await holder.acquire(false)).toBe(true);
    const waiter = new RedisLock(name, { client: client(), ...WAITING });
    const done = waiter.acquire();
    await queued(holder.queueKey, 1, 'queued');
    const line = await inspector.pttl(holder.queueKey);
    expect(line).toBeGreaterThan(50_000);
    expect(line).toBeLessThanOrEqual(60_000);

    // As if its last attempt were 20 s ago: its next one (the 5 s poll) gives the line a minute.
    await inspector.pexpire(holder.queueKey, 40_000);
    await waitFor(async () => (await inspector.pttl(holder.queueKey)) > 50_000, {
      timeout: FIRST_POLL_WITHIN,
      what: 'the line renewed by a poll',
    });

    await holder.release();
    await done;
    expect(waiter.isAcquired).toBe(true);
    await waiter.release();
  });

  it('a line lost (a flush, a restart without persistence): the waiter queues again at its next attempt, and is granted at the release', async ({
    expect,
    onTestFinished,
  }) => {
    const { client, inspector, queued } = redis.setUp(onTestFinished);
    const name = uniqueName('line-lost');
    const holder = new RedisLock(name, { client: client(), expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const waiter = new RedisLock(name, { client: client(), ...WAITING });
    const done = waiter.acquire();
    await queued(holder.queueKey, 1, 'queued');
    const [entry] = await inspector.zrange(holder.queueKey, '0', '-1');

    await inspector.del(holder.queueKey);
    await waitFor(async () => (await inspector.zcard(holder.queueKey)) === 1, {
      timeout: FIRST_POLL_WITHIN,
      what: 'queued again',
    });
    expect(await inspector.zrange(holder.queueKey, '0', '-1'), 'the same entry').toEqual([entry]);
    const line = await inspector.pttl(holder.queueKey);
    expect(line, 'with the holder’s TTL and a minute').toBeGreaterThan(60_000);

    await holder.release();
    await done;
    expect(waiter.isAcquired).toBe(true);
    expect(await inspector.get(holder.key), 'granted by the release').toBe(entry?.split(' ')[3]);
    await waiter.release();
  });
});
