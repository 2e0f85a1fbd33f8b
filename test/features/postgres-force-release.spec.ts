/**
 * PostgreSQL force-release through the line, on the real server: `manager.forceRelease()` evicts
 * the holder and, in the same transaction, gives the lock to the first live waiter in line, as a
 * release does (a fresh fencing token, the dated grant message on the waiter's channel), so that
 * a newcomer cannot take it first and the line keeps its order. With nobody in line it frees the
 * lock.
 *
 * The operator and the newcomer run in a worker thread (test/fixtures/postgres-force-release-
 * worker.mjs) while this thread, where the waiters are, blocks: as waiters in busy processes, they
 * cannot react to any message until the newcomer has tried, so the line keeps its order only if
 * the force-release itself gave the lock to the first in line.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import { LockManager, PostgresLock } from 'nestjs-sherlock';
import pg from 'pg';
import { describe, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { postgresUrl } from '../support/env.js';
import { waitFor } from '../support/helpers.js';
import { scope } from '../support/locks.js';

const WORKER = fileURLToPath(
  new URL('../fixtures/postgres-force-release-worker.mjs', import.meta.url),
);

/** Waiters that poll rarely: only a grant (or a wake) makes them hold in time. */
const SLOW_POLLING = { retryInterval: 5_000, timeout: 20_000, expire: 60_000 };

interface Forced {
  readonly type: 'forced' | 'error';
  readonly message?: string;
  readonly removed: { app: string | null; fencingToken: string | null } | null;
  readonly cutIn: boolean;
  readonly holder: string | null;
  readonly waiting: number | null;
}

/** The next message of `worker` of the given type. */
const messageOf = <T>(worker: Worker, type: string) =>
  new Promise<T>((resolve, reject) => {
    const listener = (message: { type?: string }) => {
      if (message.type !== type && message.type !== 'error') return;
      worker.off('message', listener);
      resolve(message as T);
    };
    worker.on('message', listener);
    worker.once('error', reject);
  });

describe('postgres: force-release gives the lock to the first in line', () => {
  /** A fresh pool, ended after the test. */
  const poolFor = (defer: (fn: () => unknown) => void) => {
    const pool = new pg.Pool({ connectionString: postgresUrl() });
    pool.on('error', () => undefined);
    defer(() => pool.end());
    return pool;
  };

  it('H evicted, W1 holds at once (fresh fencing token), a newcomer right after is refused while W2 waits, W2 follows W1; with nobody in line it frees the lock', async ({
    expect,
    onTestFinished,
  }) => {
    const { defer } = scope(onTestFinished);
    const inspector = poolFor(defer);
    const managerOf = (appName: string) => {
      const manager = new LockManager({ backend: 'postgres', client: poolFor(defer), appName });
      defer(() => manager.close());
      return manager;
    };
    const operator = managerOf('operator');
    const name = uniqueName('pg-force');
    const holder = managerOf('h').lock(name, { expire: 30_000 });
    const first = managerOf('w1').lock(name, SLOW_POLLING);
    const second = managerOf('w2').lock(name, SLOW_POLLING);
    const entries = async () =>
      (
        await inspector.query(
          `SELECT token, channel, id FROM sherlock_lock_waiters WHERE key = $1 ORDER BY seq`,
          [holder.key],
        )
      ).rows as { token: string; channel: string; id: string }[];
    const line = async () => (await entries()).map((entry) => entry.token);

    expect(await holder.acquire(false)).toBe(true);
    const firstAcquired = first.acquire();
    await waitFor(async () => (await line()).length === 1, { what: 'W1 in line' });
    const secondAcquired = second.acquire();
    await waitFor(async () => (await line()).length === 2, { what: 'W2 in line' });
    const queued = await line();
    expect(queued[0]).toContain('|w1');
    expect(queued[1]).toContain('|w2');
    // What the force-release tells: W1 on its grant channel, and the waiters of the key.
    const [w1Entry] = await entries();
    const heard: { channel: string; payload?: string }[] = [];
    const listening = new pg.Client({ connectionString: postgresUrl() });
    listening.on('error', () => undefined);
    defer(() => listening.end());
    // sherlock_release is one channel for every key: other files' force-releases run beside this one.
    listening.on('notification', ({ channel, payload }) => {
      if (channel === w1Entry?.channel || payload === holder.key) heard.push({ channel, payload });
    });
    await listening.connect();
    await listening.query(`LISTEN sherlock_release; LISTEN ${w1Entry?.channel ?? 'none'}`);

    const done = new SharedArrayBuffer(4);
    const worker = new Worker(WORKER, { workerData: { url: postgresUrl(), name, done } });
    defer(() => worker.terminate());
    expect((await messageOf<{ type: string }>(worker, 'ready')).type).toBe('ready');
    const forcedMessage = messageOf<Forced>(worker, 'forced');
    worker.postMessage('go');
    // Blocks this thread (its waiters) until the worker has force-released and the newcomer tried.
    expect(Atomics.wait(new Int32Array(done), 0, 0, 15_000)).not.toBe('timed-out');
    const forced = await forcedMessage;
    expect(forced.message).toBeUndefined();
    expect(forced.removed).toEqual({ app: 'h', fencingToken: holder.fencingToken });
    expect(forced.cutIn, 'a newcomer right after the force-release is refused').toBe(false);
    expect(forced.holder, 'the force-release gave the lock to W1').toBe('w1');
    expect(forced.waiting, 'W2 still waits').toBe(1);

    expect(await firstAcquired).toBe(true);
    expect(BigInt(first.fencingToken ?? -1)).toBeGreaterThan(BigInt(holder.fencingToken ?? -1));
    // The release's dated grant message, to W1 alone: no wake of every waiter of the key.
    await waitFor(() => heard.length > 0, { what: "W1's grant message" });
    expect(heard).toHaveLength(1);
    expect(heard[0]?.channel).toBe(w1Entry?.channel);
    const [id, fence, serverMs] = heard[0]?.payload?.split(' ') ?? [];
    expect(id).toBe(w1Entry?.id);
    expect(fence).toBe(first.fencingToken);
    expect(Math.abs(Number(serverMs) - Date.now())).toBeLessThan(60_000);
    expect((await operator.inspect(name)).holder?.app).toBe('w1');
    expect(await line(), 'W2 still in line').toEqual([queued[1]]);
    // The evicted holder's release does not touch W1's holding.
    await holder.release().catch(() => undefined);
    expect((await operator.inspect(name)).holder?.app).toBe('w1');

    await first.release();
    expect(await secondAcquired).toBe(true);
    expect((await operator.inspect(name)).holder?.app).toBe('w2');
    expect(BigInt(second.fencingToken ?? -1)).toBeGreaterThan(BigInt(first.fencingToken ?? -1));

    // Nobody in line: the force-release frees the lock, a newcomer takes it.
    expect((await operator.forceRelease(name))?.holder?.app).toBe('w2');
    expect((await operator.inspect(name)).held).toBe(false);
    await waitFor(() => heard.length > 1, { what: 'the wake of the waiters of the key' });
    expect(heard.slice(1)).toEqual([{ channel: 'sherlock_release', payload: holder.key }]);
    const newcomer = new PostgresLock(name, { client: poolFor(defer), expire: 30_000 });
    expect(await newcomer.acquire(false)).toBe(true);
    await newcomer.release();
    expect(await operator.forceRelease(name)).toBeNull();
  });
});
