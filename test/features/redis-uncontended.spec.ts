/**
 * The Redis uncontended path (issue 11 part 3) on a real server of its own: the acquire script
 * answers a newcomer that found nobody in line with an integer fencing token (a waiter's grant
 * still comes as a string), the release script returns early when nobody is in line, and the
 * hot paths that send their EVALSHA themselves still load the scripts after a SCRIPT FLUSH.
 */
import { Redis } from 'ioredis';
import { RedisLock } from 'nestjs-sherlock';
import { afterAll, beforeAll, describe, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { waitFor } from '../support/helpers.js';
import { type RedisServer, startRedis } from '../support/servers.js';

describe('redis: the uncontended path (its own server)', () => {
  let server: RedisServer;
  let client: Redis;
  beforeAll(async () => {
    server = await startRedis();
    client = new Redis(server.url);
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });

  it('fencing tokens are decimal strings, strictly increasing across uncontended acquires and a hand-off', async ({
    expect,
  }) => {
    const name = uniqueName('fast-fence');
    const other = new Redis(server.url);
    try {
      const a = new RedisLock(name, { client, retryInterval: 10_000, timeout: 20_000 });
      const b = new RedisLock(name, { client: other, retryInterval: 10_000, timeout: 20_000 });
      const tokens: string[] = [];
      await a.acquire(); // uncontended: the integer reply
      tokens.push(a.fencingToken!);
      await a.release();
      await a.acquire();
      tokens.push(a.fencingToken!);
      const waiting = b.acquire(); // refused, then queued: granted by a's release's message
      await waitFor(async () => (await client.exists(a.queueKey)) === 1);
      await a.release();
      expect(await waiting).toBe(true);
      tokens.push(b.fencingToken!);
      await b.release();
      expect(await client.exists(a.queueKey)).toBe(0);
      await a.acquire(); // uncontended again
      tokens.push(a.fencingToken!);
      await a.release();
      for (const token of tokens) expect(token).toMatch(/^[1-9]\d*$/u);
      for (let i = 1; i < tokens.length; i++) {
        expect(BigInt(tokens[i]!) > BigInt(tokens[i - 1]!)).toBe(true);
      }
      expect(await client.get(a.fencingKey)).toBe(tokens.at(-1));
    } finally {
      other.disconnect();
    }
  });

  it('after SCRIPT FLUSH the acquire and release still run (loaded again on NOSCRIPT)', async ({
    expect,
  }) => {
    const lock = new RedisLock(uniqueName('fast-flush'), { client });
    await client.script('FLUSH');
    expect(await lock.acquire(false)).toBe(true);
    expect(await client.get(lock.key)).not.toBeNull();
    await client.script('FLUSH');
    await lock.release();
    expect(await client.exists(lock.key)).toBe(0);
    // A release that finds another owner still says so (the early return is after the check).
    expect(await lock.acquire(false)).toBe(true);
    await client.set(lock.key, 'someone-else');
    await expect(lock.release()).rejects.toMatchObject({ reason: 'not-owned' });
    expect(await client.get(lock.key)).toBe('someone-else');
  });
});
