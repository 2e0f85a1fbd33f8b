/**
 * The Redis uncontended path (issue 11 part 3) on a real server of its own: the acquire script
 * answers a newcomer that found nobody in line with an integer fencing token (a waiter's grant
 * still comes as a string), the release script returns early when nobody is in line, and the
 * hot paths that send their EVALSHA themselves still load the scripts after a SCRIPT FLUSH.
 *
 * The lock's own uncontended path (base-lock.ts `acquireFirst`, 2026-12-05): the first attempt
 * is made without a wait session and handed to one only when refused or failed; here, on a
 * server paused (SIGSTOP) so that nothing answers, its deadline and the release's: both end
 * with LockBackendError (cause: the deadline), the abandoned attempt is undone and the
 * unanswered release applied once the server answers again, and the manager's held locks
 * follow every step.
 */
import { Redis } from 'ioredis';
import { LockBackendError, LockManager, LockNotHeldError, RedisLock } from 'nestjs-sherlock';
import { afterAll, beforeAll, describe, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { rejectionOf, waitFor } from '../support/helpers.js';
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
  it('using() without options takes the uncontended path; with options, and with an unknown one, as before', async ({
    expect,
  }) => {
    const lock = new RedisLock(uniqueName('fast-using'), { client });
    const seen = await lock.using(async () => {
      expect(lock.isAcquired).toBe(true);
      return client.get(lock.key);
    });
    expect(seen).toMatch(/\|/u); // the owner token, with its metadata
    expect(lock.isAcquired).toBe(false);
    expect(await client.exists(lock.key)).toBe(0);
    expect(await lock.using(() => lock.fencingToken, { timeout: 1_000 })).toMatch(/^[1-9]\d*$/u);
    await expect(lock.using(() => 1, { retries: 1 } as never)).rejects.toThrow(/retries/u);
    expect(lock.isAcquired).toBe(false);
  });

  it('a first attempt unanswered within operationTimeout: non-blocking and blocking end with LockBackendError, and the attempts are undone once the server answers', async ({
    expect,
  }) => {
    const name = uniqueName('fast-deadline');
    const own = new Redis(server.url);
    const locks = new LockManager({ backend: 'redis', client: own });
    // Wide margins: the machine is shared; operationTimeout bounds each attempt.
    const lock = locks.lock(name, { operationTimeout: 1_000, timeout: 2_500 });
    server.pause();
    try {
      const once = await rejectionOf(lock.acquire(false));
      expect(once).toBeInstanceOf(LockBackendError);
      expect((once as LockBackendError).operation).toBe('acquire');
      expect((once.cause as Error).name).toBe('DeadlineExceededError');
      expect(lock.isAcquired).toBe(false);
      // Blocking: the first attempt's deadline hands the acquire to the wait session, whose
      // attempts go unanswered too: the server never answered, so not a LockTimeoutError.
      const blocking = await rejectionOf(lock.acquire());
      expect(blocking).toBeInstanceOf(LockBackendError);
      expect(lock.isAcquired).toBe(false);
      expect(locks.held()).toEqual([]);
    } finally {
      server.resume();
    }
    // The queued attempts run now; each one that took the lock (for its 60 s expire) is released
    // by its undo, so the lock is soon free again (the wait is far shorter than the expire).
    await waitFor(() => lock.acquire(false), { what: 'the abandoned attempts to be undone' });
    expect(locks.held()).toEqual([lock]);
    await lock.release();
    expect(locks.held()).toEqual([]);
    await locks.close();
    own.disconnect();
  });

  it('a release unanswered within operationTimeout: LockBackendError, the lock still held here; applied once the server answers', async ({
    expect,
  }) => {
    const own = new Redis(server.url);
    const locks = new LockManager({ backend: 'redis', client: own });
    const first = locks.lock(uniqueName('fast-release-a'), { operationTimeout: 1_000 });
    const second = locks.lock(uniqueName('fast-release-b'), { operationTimeout: 1_000 });
    expect(await first.acquire()).toBe(true);
    expect(await second.acquire()).toBe(true);
    expect(locks.held()).toEqual([first, second]);
    server.pause();
    let error: Error;
    try {
      error = await rejectionOf(first.release());
    } finally {
      server.resume();
    }
    expect(error).toBeInstanceOf(LockBackendError);
    expect((error as LockBackendError).operation).toBe('release');
    expect((error.cause as Error).name).toBe('DeadlineExceededError');
    expect(first.isAcquired).toBe(true);
    expect(locks.held()).toEqual([first, second]);
    // The release was sent: the server applies it when it runs again.
    await waitFor(async () => (await client.exists(first.key)) === 0, {
      what: 'the unanswered release to be applied',
    });
    const again = await rejectionOf(first.release());
    expect(again).toBeInstanceOf(LockNotHeldError);
    expect((again as LockNotHeldError).reason).toBe('not-owned');
    expect(locks.held()).toEqual([second]);
    // Acquired again, it goes last (insertion order, as heldLocks() always gave).
    expect(await first.acquire()).toBe(true);
    expect(locks.held()).toEqual([second, first]);
    await second.release();
    await first.release();
    expect(locks.held()).toEqual([]);
    await locks.close();
    own.disconnect();
  });
});
