/**
 * The lock-loss signal: every held lock has `lock.signal`, aborted with a LockLostError when the
 * holding is known lost: a margin (a tenth of the TTL, at most 1 s) BEFORE the server may free it
 * when it could not be renewed ('unconfirmed'), or when a renewal finds another owner ('taken').
 * `lockEvents` emits 'lost' at the same time. A paused holder process: processes.spec.ts.
 */
import { Redis } from 'ioredis';
import { type BaseLock, LockError, LockLostError, RedisLock } from 'nestjs-sherlock';
import { afterAll, describe, it } from 'vitest';

import { EXTENDING, fixtures, lifetime, uniqueName } from '../support/backends.js';
import {
  abortTime,
  delay,
  expectLost,
  expectReleaseError,
  lostEventsOf,
  now,
  rejectionOf,
  waitFor,
} from '../support/helpers.js';
import { closeEtcdInspector } from '../support/inspect.js';
import { scope } from '../support/locks.js';
import { type RedisServer, startRedis } from '../support/servers.js';

afterAll(closeEtcdInspector);

interface AbortSeen {
  /** ms from just before acquire() to the abort. */
  readonly after: number;
  /** Whether another client saw the lock held, asked the moment the signal aborted. */
  readonly heldThen: Promise<boolean>;
}

/** Acquires `held` and resolves when its signal aborts, asking `other` right then. */
async function acquireAndAwaitAbort(held: BaseLock, other: BaseLock): Promise<AbortSeen> {
  // The other client connects now: its first connection (PostgreSQL forks a server process for
  // it) is not part of the margin measured at the abort.
  await other.locked();
  const start = now();
  if (!(await held.acquire(false))) throw new Error(`could not take ${held.name}`);
  return new Promise((resolve) =>
    held.signal.addEventListener(
      'abort',
      () => resolve({ after: now() - start, heldThen: other.locked() }),
      { once: true },
    ),
  );
}

/**
 * The expire of the tests below: 5 s, on every backend, so the signal aborts half a second before
 * the server may free the lock: wide enough for the other client's check to reach the server on a
 * loaded machine (with 2 s the margin was 200 ms, and a ZooKeeper check under a load average of
 * 28 once took longer).
 */
const EXPIRE = 5_000;

describe.concurrent('without autoExtend the signal aborts before the server frees the lock', () => {
  it.for(fixtures)(
    `$name, expire ${EXPIRE}: aborts a tenth of what the server surely keeps before that ('unconfirmed'), while another client still sees it held; 'lost' is emitted with it`,
    async (f, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const name = uniqueName('margin');
      const held = lock(f, name, { expire: EXPIRE });
      const other = lock(f, name);
      const events = lostEventsOf(held, onTestFinished);
      // What the server surely keeps, as the backend declares (memcached: up to 1 s less), and
      // when the signal should abort: a tenth of that (at most 1 s) before.
      const kept = lifetime(f, EXPIRE);
      const abortAt = kept - Math.min(kept / 10, 1_000);

      const seen = await acquireAndAwaitAbort(held, other);
      expect(seen.after).toBeGreaterThan(abortAt - 50);
      expect(seen.after).toBeLessThan(kept);
      expect(await seen.heldThen, 'held on the server when the signal aborted').toBe(true);
      expectLost(held.signal, ['unconfirmed']);
      expect(events.map(({ name: n, key, error }) => ({ n, key, error }))).toEqual([
        { n: name, key: held.key, error: held.signal.reason },
      ]);

      // The server frees it afterwards, and then it is not this owner's any more.
      const abortedAt = now();
      await waitFor(async () => !(await other.locked()), { what: 'the expiry', timeout: 5_000 });
      const freedAfter = now() - abortedAt;
      console.log(
        `${f.name}: signal aborted ${Math.round(seen.after)} ms after the acquire, lock free ${Math.round(freedAfter)} ms later`,
      );
      await expectReleaseError(held.release(), 'not-owned');
    },
  );

  it('memcached, expire 2000, acquired at 3 phases of its 1-second clock: each signal aborts while the item still exists (memcached may drop it after just over 1 s)', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const trials = [0, 333, 667].map(async (offset) => {
      await delay(offset);
      const name = uniqueName('mc-margin');
      const held = lock('memcached', name, { expire: 2_000 });
      const other = lock('memcached', name);
      const start = now();
      const seen = await acquireAndAwaitAbort(held, other);
      const heldThen = await seen.heldThen;
      await waitFor(async () => !(await other.locked()), {
        what: 'the expiry',
        timeout: 5_000,
        interval: 10,
      });
      return { after: Math.round(seen.after), heldThen, freedAt: Math.round(now() - start) };
    });
    const results = await Promise.all(trials);
    console.log('memcached: abort / free after the acquire (ms):', JSON.stringify(results));
    for (const result of results) {
      expect(result.heldThen, JSON.stringify(result)).toBe(true);
      expect(result.after).toBeGreaterThan(500);
      expect(result.after).toBeLessThan(2_000);
      expect(result.freedAt).toBeGreaterThan(result.after);
    }
  });

  it.for(EXTENDING)(
    "$name: autoExtend finds the lock taken at its next renewal: the signal aborts ('taken') within about one interval",
    async (f, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const name = uniqueName('stolen');
      const held = lock(f, name, { expire: 5_000, autoExtend: 300 });
      const thief = lock(f, name, { expire: 5_000 });
      const events = lostEventsOf(held, onTestFinished);
      const error = await rejectionOf(
        held.using(async (own) => {
          await f.server.remove(own);
          expect(await thief.acquire(false)).toBe(true);
          const start = now();
          const abortedAt = await abortTime(own.signal);
          expect(abortedAt - start).toBeLessThan(1_500);
          expectLost(own.signal, ['taken']);
        }),
      );
      // using() releases at the end: no longer this owner's, so it says so.
      expect(error).toBeInstanceOf(LockError);
      expect(error.message).toMatch(/you do not hold it any more/);
      expect(events).toHaveLength(1);
      expect(await thief.locked()).toBe(true);
    },
  );

  it.for(EXTENDING)(
    '$name: a normal release is no loss: a signal taken while held stays un-aborted past the expiry; lock.signal afterwards is aborted with a plain LockError',
    async (f, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const held = lock(f, uniqueName('released'), { expire: f.shortExpire, autoExtend: true });
      const events = lostEventsOf(held, onTestFinished);
      expect(held.signal.aborted, 'not held yet').toBe(true);
      expect(await held.acquire(false)).toBe(true);
      const signal = held.signal;
      expect(signal.aborted).toBe(false);
      await held.release();
      await delay(f.shortExpire + 200); // past the expiry and several renewal intervals
      expect(signal.aborted).toBe(false);
      expect(held.signal.aborted).toBe(true);
      expect(held.signal.reason).toBeInstanceOf(LockError);
      expect(held.signal.reason).not.toBeInstanceOf(LockLostError);
      expect(events).toEqual([]);
    },
  );
});

describe('with autoExtend, a server that stops answering', () => {
  let server: RedisServer | undefined;
  let client: Redis | undefined;

  afterAll(async () => {
    if (server?.paused) server.resume();
    client?.disconnect();
    await server?.stop();
  });

  it("aborts the signal ('unconfirmed') before the lock's expiry, once, although renewals keep failing", async ({
    expect,
    onTestFinished,
  }) => {
    server = await startRedis();
    client = new Redis(server.url);
    const held = new RedisLock(uniqueName('paused'), { client, expire: 2_000, autoExtend: true });
    const events = lostEventsOf(held, onTestFinished);
    const start = now();
    expect(await held.acquire(false)).toBe(true);
    server.pause(); // SIGSTOP: the renewals go unanswered
    try {
      const abortedAfter = (await abortTime(held.signal)) - start;
      expect(abortedAfter).toBeGreaterThan(1_000);
      expect(abortedAfter).toBeLessThan(2_000);
      expectLost(held.signal, ['unconfirmed']);
    } finally {
      server.resume();
    }
    // The renewal queued meanwhile is answered now (and may even succeed): a lost holding stays
    // lost, and is reported once.
    await delay(500);
    expect(events).toHaveLength(1);
    expect(held.signal.aborted).toBe(true);
    await held.release().catch(() => undefined);
  });
});
