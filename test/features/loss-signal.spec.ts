/**
 * The lock-loss signal: every held lock has `lock.signal`, aborted with a LockLostError when the
 * holding is known lost: a margin (a tenth of the TTL, at most 1 s) BEFORE the server may free it
 * when it could not be renewed ('unconfirmed'), or when a renewal finds another owner ('taken').
 * `lockEvents` emits 'lost' at the same time. A paused holder process: processes.spec.ts.
 */
import { Redis } from 'ioredis';
import {
  type BaseLock,
  LockError,
  lockEvents,
  type LockLostEvent,
  LockLostError,
  RedisLock,
} from 'nestjs-sherlock';
import { afterAll, describe, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { type RedisServer, startRedis } from '../support/servers.js';
import {
  abortTime,
  closeEtcdInspector,
  delay,
  deleteByHand,
  expectLost,
  expectReleaseError,
  now,
  rejection,
  scope,
  type TokenBackend,
  waitUntil,
} from './helpers.js';

afterAll(closeEtcdInspector);

/** The lost events of `lock` from now on. */
function lostEventsOf(lock: object, onTestFinished: (fn: () => void) => void): LockLostEvent[] {
  const events: LockLostEvent[] = [];
  const listener = (event: LockLostEvent) => {
    if (event.lock === lock) events.push(event);
  };
  lockEvents.on('lost', listener);
  onTestFinished(() => void lockEvents.off('lost', listener));
  return events;
}

interface AbortSeen {
  /** ms from just before acquire() to the abort. */
  readonly after: number;
  /** Whether another client saw the lock held, asked the moment the signal aborted. */
  readonly heldThen: Promise<boolean>;
}

/** Acquires `held` and resolves when its signal aborts, asking `other` right then. */
async function acquireAndAwaitAbort(held: BaseLock, other: BaseLock): Promise<AbortSeen> {
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

describe.concurrent('without autoExtend the signal aborts before the server frees the lock', () => {
  it.for(['redis', 'memory', 'etcd'] as const)(
    "%s, expire 2000: aborts ~1800 ms after the acquire ('unconfirmed'), while another client still sees it held; 'lost' is emitted with it",
    async (backend: TokenBackend, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const name = uniqueName('margin');
      const held = lock(backend, name, { expire: 2_000 });
      const other = lock(backend, name);
      const events = lostEventsOf(held, onTestFinished);

      const seen = await acquireAndAwaitAbort(held, other);
      expect(seen.after).toBeGreaterThan(1_000);
      expect(seen.after).toBeLessThan(2_000);
      expect(await seen.heldThen, 'held on the server when the signal aborted').toBe(true);
      expectLost(expect, held.signal, ['unconfirmed']);
      expect(events.map(({ name: n, key, error }) => ({ n, key, error }))).toEqual([
        { n: name, key: held.key, error: held.signal.reason },
      ]);

      // The server frees it afterwards, and then it is not this owner's any more.
      const abortedAt = now();
      await waitUntil(async () => !(await other.locked()), 'the expiry', 5_000);
      const freedAfter = now() - abortedAt;
      console.log(
        `${backend}: signal aborted ${Math.round(seen.after)} ms after the acquire, lock free ${Math.round(freedAfter)} ms later`,
      );
      await expectReleaseError(expect, held.release(), 'not-owned');
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
      await waitUntil(async () => !(await other.locked()), 'the expiry', 5_000, 10);
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

  it("autoExtend finds the lock taken at its next renewal: the signal aborts ('taken') within about one interval", async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const name = uniqueName('stolen');
    const held = lock('redis', name, { expire: 5_000, autoExtend: 300 });
    const thief = lock('redis', name, { expire: 5_000 });
    const events = lostEventsOf(held, onTestFinished);
    const error = await rejection(
      held.using(async (own) => {
        await deleteByHand('redis', own.key);
        expect(await thief.acquire(false)).toBe(true);
        const start = now();
        const abortedAt = await abortTime(own.signal);
        expect(abortedAt - start).toBeLessThan(1_500);
        expectLost(expect, own.signal, ['taken']);
      }),
    );
    // using() releases at the end: no longer this owner's, so it says so.
    expect(error).toBeInstanceOf(LockError);
    expect((error as LockError).message).toMatch(/you do not hold it any more/);
    expect(events).toHaveLength(1);
    expect(await thief.locked()).toBe(true);
  });

  it('a normal release is no loss: a signal taken while held stays un-aborted; lock.signal afterwards is aborted with a plain LockError', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const held = lock('memory', uniqueName('released'), { expire: 1_000, autoExtend: true });
    const events = lostEventsOf(held, onTestFinished);
    expect(held.signal.aborted, 'not held yet').toBe(true);
    expect(await held.acquire(false)).toBe(true);
    const signal = held.signal;
    expect(signal.aborted).toBe(false);
    await held.release();
    await delay(1_200); // past the expiry and several renewal intervals
    expect(signal.aborted).toBe(false);
    expect(held.signal.aborted).toBe(true);
    expect(held.signal.reason).toBeInstanceOf(LockError);
    expect(held.signal.reason).not.toBeInstanceOf(LockLostError);
    expect(events).toEqual([]);
  });
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
      expectLost(expect, held.signal, ['unconfirmed']);
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
