/**
 * PostgreSQL direct grant (strict FIFO) and its failure cases, on the real server: a release gives
 * the lock to the first live waiter in line (the row set to that waiter's token, the fencing
 * token in a NOTIFY on its own channel), a newcomer never cuts in while someone waits, and each
 * way a grant can go wrong (the waiter gave up, died, never got the message, its listening
 * connection dropped) ends with the line moving on, never with two holders.
 */
import { LockAbortedError, LockManager, LockTimeoutError, PostgresLock } from 'nestjs-sherlock';
import pg from 'pg';
import { describe, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { delay, now, waitFor } from '../support/helpers.js';
import { scope } from '../support/locks.js';
import { postgresUrl } from '../support/env.js';

/** Far above a pushed hand-off, below the 1.8 s a waiter's first fallback poll takes at least. */
const HANDOFF_LIMIT_MS = 1_000;
const SLOW_POLLING = { retryInterval: 5_000, timeout: 20_000 };

interface Entry {
  readonly seq: string;
  readonly token: string;
  readonly channel: string;
  readonly id: string;
  readonly pid: number;
  readonly expire: number | null;
}

describe('postgres: direct grant, strict first come first served', () => {
  /** A fresh pool, ended after the test. */
  const poolFor = (defer: (fn: () => unknown) => void) => {
    const pool = new pg.Pool({ connectionString: postgresUrl() });
    pool.on('error', () => undefined);
    defer(() => pool.end());
    return pool;
  };

  /** The line of `key`, first first. */
  const entries = async (pool: pg.Pool, key: string): Promise<Entry[]> =>
    (
      await pool.query(
        `SELECT seq, token, channel, id, pid, expire FROM sherlock_lock_waiters
          WHERE key = $1 ORDER BY seq`,
        [key],
      )
    ).rows as Entry[];
  const queued = (pool: pg.Pool, key: string, n: number) =>
    waitFor(async () => (await entries(pool, key)).length === n, { what: `${n} queued` });
  const holderOf = async (pool: pg.Pool, key: string) =>
    (await pool.query(`SELECT token, fence::text FROM sherlock_locks WHERE key = $1`, [key]))
      .rows[0] as { token: string; fence: string } | undefined;

  it('a newcomer never cuts in while someone waits, not even acquire(false) right behind the release; the waiter holds from the message alone, with its own token and metadata', async ({
    expect,
    onTestFinished,
  }) => {
    const { defer } = scope(onTestFinished);
    const inspector = poolFor(defer);
    const name = uniqueName('pg-fifo');
    const waiters = new LockManager({ backend: 'postgres', client: poolFor(defer), appName: 'w' });
    defer(() => waiters.close());
    const holder = new PostgresLock(name, { client: poolFor(defer), expire: 30_000 });
    const newcomer = new PostgresLock(name, { client: poolFor(defer) });
    const waiter = waiters.lock(name, { ...SLOW_POLLING, expire: 60_000 });
    const cutIns: boolean[] = [];
    for (let round = 0; round < 4; round++) {
      expect(await holder.acquire(false)).toBe(true);
      const waiting = waiter.acquire();
      await queued(inspector, holder.key, 1);
      const [entry] = await entries(inspector, holder.key);
      expect(entry?.token).toContain('|w');
      expect(entry?.expire, "the waiter's expire travels with it").toBe(60_000);
      expect(entry?.channel).toMatch(/^sherlock_grant_[0-9a-f]+$/u);
      // The newcomer's attempt goes out right behind the release, on another pool.
      const released = holder.release();
      const attempt = newcomer.acquire(false);
      await released;
      cutIns.push(await attempt);
      expect(await waiting).toBe(true);
      expect((await holderOf(inspector, holder.key))?.token, "the waiter's queued token").toBe(
        entry?.token,
      );
      expect(BigInt(waiter.fencingToken ?? -1)).toBeGreaterThan(BigInt(holder.fencingToken ?? -1));
      expect(await entries(inspector, holder.key), 'the line is empty').toEqual([]);
      const info = await waiters.inspect(name);
      expect(info.holder?.app).toBe('w');
      await waiter.release();
      expect(await holderOf(inspector, holder.key), 'its token released it').toBeUndefined();
    }
    expect(cutIns, 'the newcomer never cut in').toEqual([false, false, false, false]);
    // Control: nobody in line, the newcomer gets the free lock.
    expect(await newcomer.acquire(false)).toBe(true);
    await newcomer.release();
  });

  it('a waiter aborted at the moment it is granted gives the lock to the next in line; one that timed out has left the line; one whose grant message is lost takes the grant by its last attempt', async ({
    expect,
    onTestFinished,
  }) => {
    const { defer } = scope(onTestFinished);
    const inspector = poolFor(defer);
    for (const way of ['abort', 'timeout', 'deadline'] as const) {
      const name = uniqueName(`pg-quit-${way}`);
      const holder = new PostgresLock(name, { client: poolFor(defer), expire: 30_000 });
      expect(await holder.acquire(false)).toBe(true);
      const controller = new AbortController();
      const quitter = new PostgresLock(name, {
        client: poolFor(defer),
        expire: 60_000,
        ...SLOW_POLLING,
        ...(way === 'abort' ? {} : { timeout: 1_500 }),
      });
      const outcome = quitter.acquire({ signal: controller.signal }).then(
        (ok) => ({ ok, err: undefined }),
        (err: unknown) => ({ ok: false, err }),
      );
      await queued(inspector, holder.key, 1);
      const [quitterEntry] = await entries(inspector, holder.key);
      const next = new PostgresLock(name, { client: poolFor(defer), ...SLOW_POLLING });
      const acquired = next.acquire().then(() => now());
      await queued(inspector, holder.key, 2);

      if (way === 'abort') {
        // Released and aborted in the same tick: the grant message cannot have arrived yet.
        const released = holder.release();
        controller.abort();
        await released;
        expect((await outcome).err).toBeInstanceOf(LockAbortedError);
      } else if (way === 'timeout') {
        expect((await outcome).err).toBeInstanceOf(LockTimeoutError);
        await waitFor(async () => (await entries(inspector, holder.key)).length === 1, {
          what: 'the quitter left the line',
        });
        await holder.release();
      } else {
        // The quitter's grant message goes to an id nobody has (lost): granted, never told.
        await inspector.query(
          `UPDATE sherlock_lock_waiters SET id = 'lost' WHERE key = $1 AND token = $2`,
          [holder.key, quitterEntry?.token],
        );
        await holder.release();
        expect((await holderOf(inspector, holder.key))?.token, 'granted to the quitter').toBe(
          quitterEntry?.token,
        );
        expect((await outcome).ok, 'its last attempt, at the deadline, found the grant').toBe(true);
        expect(quitter.isAcquired).toBe(true);
        await quitter.release();
      }
      const releasedAt = now();
      const gap = (await acquired) - releasedAt;
      expect(gap, "passed on at once, not left to the quitter's 60 s expiry").toBeLessThan(
        HANDOFF_LIMIT_MS,
      );
      expect(next.isAcquired).toBe(true);
      await next.release();
      expect(await holderOf(inspector, holder.key)).toBeUndefined();
      expect(await entries(inspector, holder.key), 'the line is empty').toEqual([]);
    }
  });

  it('dead entries are skipped (a listener gone, an entry not refreshed); a live but silent waiter holds the line for its own expire only', async ({
    expect,
    onTestFinished,
  }) => {
    const { defer } = scope(onTestFinished);
    const inspector = poolFor(defer);
    const name = uniqueName('pg-ghost');
    const holder = new PostgresLock(name, { client: poolFor(defer), expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const waiter = new PostgresLock(name, { client: poolFor(defer), ...SLOW_POLLING });
    const acquired = waiter.acquire().then(() => now());
    await queued(inspector, holder.key, 1);
    const [live] = await entries(inspector, holder.key);
    // Ahead of it: a process whose listener is gone (no such backend), one whose listener lives
    // but which stopped refreshing its entry a minute ago, and a waiter whose listener lives
    // (the live one's) but which is gone itself and asked for a 1.5 s expiry.
    let placed = 0;
    const ahead = (token: string, pid: number, expire: number, seen: string) =>
      inspector.query(
        `INSERT INTO sherlock_lock_waiters (key, seq, token, channel, id, pid, expire, last_seen)
         VALUES ($1, $2, $3, $4, 'ghost', $5, $6, clock_timestamp() - $7::interval)`,
        [holder.key, Number(live?.seq) - 3 + placed++, token, live?.channel, pid, expire, seen],
      );
    await ahead('dead-token', 0, 30_000, '0 s');
    await ahead('stale-token', live?.pid ?? 0, 30_000, '60 s');
    await ahead('ghost-token', live?.pid ?? 0, 1_500, '0 s');
    expect((await entries(inspector, holder.key)).map((e) => e.token)).toEqual([
      'dead-token',
      'stale-token',
      'ghost-token',
      live?.token,
    ]);
    await holder.release();
    const releasedAt = now();
    expect(
      (await holderOf(inspector, holder.key))?.token,
      'the dead skipped, the ghost granted',
    ).toBe('ghost-token');
    expect(
      (await entries(inspector, holder.key)).map((e) => e.token),
      'the dead pruned',
    ).toEqual([live?.token]);
    const gap = (await acquired) - releasedAt;
    expect(gap, 'not before the ghost expired').toBeGreaterThan(1_000);
    expect(gap, "within the ghost's expiry and a fallback poll or two").toBeLessThan(12_000);
    expect(waiter.isAcquired).toBe(true);
    expect((await holderOf(inspector, holder.key))?.token).toBe(live?.token);
    await waiter.release();
  });

  it('an expired lock whose line is marked goes to its live waiters first; a line of dead waiters does not keep a newcomer out', async ({
    expect,
    onTestFinished,
  }) => {
    const { defer } = scope(onTestFinished);
    const inspector = poolFor(defer);
    const client = await inspector.connect();
    defer(() => client.release());
    const pid = Number((await client.query('SELECT pg_backend_pid() AS pid')).rows[0]?.pid);
    const name = uniqueName('pg-dead-line');
    const newcomer = new PostgresLock(name, { client: poolFor(defer), expire: 30_000 });
    // An expired holder whose line was marked, and one waiter in it whose connection lives.
    await client.query(
      `INSERT INTO sherlock_locks (key, token, fence, expires_at, queued)
       VALUES ($1, 'expired-holder', nextval('sherlock_locks_fence'), clock_timestamp() - interval '1 s', true)`,
      [newcomer.key],
    );
    await client.query(
      `INSERT INTO sherlock_lock_waiters (key, token, channel, id, pid, expire, last_seen)
       VALUES ($1, 'waiter-token', 'sherlock_grant_none', '0', $2, 30000, clock_timestamp())`,
      [newcomer.key, pid],
    );
    expect(await newcomer.acquire(false), 'a live waiter goes first').toBe(false);
    // Its connection gone (as if its process died): the newcomer takes the lock.
    await client.query(`UPDATE sherlock_lock_waiters SET pid = 0 WHERE key = $1`, [newcomer.key]);
    expect(await newcomer.acquire(false), 'a dead line keeps nobody out').toBe(true);
    expect((await holderOf(inspector, newcomer.key))?.token).not.toBe('expired-holder');
    await newcomer.release();
    expect(await holderOf(inspector, newcomer.key)).toBeUndefined();
    expect(await entries(inspector, newcomer.key), 'the release pruned the dead').toEqual([]);
  });

  it('a lost grant message: the waiter finds the grant by its fallback poll, with a new, higher fencing token; its release is owner-checked', async ({
    expect,
    onTestFinished,
  }) => {
    const { defer } = scope(onTestFinished);
    const inspector = poolFor(defer);
    const name = uniqueName('pg-lost');
    const holder = new PostgresLock(name, { client: poolFor(defer), expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const waiter = new PostgresLock(name, { client: poolFor(defer), ...SLOW_POLLING });
    const acquired = waiter.acquire().then(() => now());
    await queued(inspector, holder.key, 1);
    const [entry] = await entries(inspector, holder.key);
    await inspector.query(`UPDATE sherlock_lock_waiters SET id = 'lost' WHERE key = $1`, [
      holder.key,
    ]);
    await holder.release();
    const releasedAt = now();
    const granted = await holderOf(inspector, holder.key);
    expect(granted?.token).toBe(entry?.token);
    expect(BigInt(granted?.fence ?? -1)).toBeGreaterThan(BigInt(holder.fencingToken ?? -1));
    const gap = (await acquired) - releasedAt;
    expect(gap, 'found by the fallback poll, not by a message').toBeGreaterThan(1_000);
    expect(BigInt(waiter.fencingToken ?? -1), 'a new token, above the unused one').toBeGreaterThan(
      BigInt(granted?.fence ?? -1),
    );
    const other = new PostgresLock(name, { client: inspector });
    expect(await other.acquire(false)).toBe(false);
    await waiter.release();
    expect(await holderOf(inspector, holder.key)).toBeUndefined();
  });

  it('the listening connection is killed, then the release: the entry of a gone listener is skipped, and the reconnect makes the waiter try again at once', async ({
    expect,
    onTestFinished,
  }) => {
    const { defer } = scope(onTestFinished);
    const inspector = poolFor(defer);
    const name = uniqueName('pg-reconnect');
    const holder = new PostgresLock(name, { client: poolFor(defer), expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const waiter = new PostgresLock(name, { client: poolFor(defer), ...SLOW_POLLING });
    const acquired = waiter.acquire().then(() => now());
    await queued(inspector, holder.key, 1);
    const [entry] = await entries(inspector, holder.key);
    const killed = await inspector.query(`SELECT pg_terminate_backend($1) AS done`, [entry?.pid]);
    expect(killed.rows[0]?.done).toBe(true);
    await waitFor(
      async () =>
        (await inspector.query(`SELECT 1 FROM pg_stat_get_activity($1)`, [entry?.pid])).rows
          .length === 0,
      { what: 'the listener gone' },
    );
    await holder.release();
    const releasedAt = now();
    const gap = (await acquired) - releasedAt;
    expect(gap, 'woken by the reconnect, not by its 2 s poll').toBeLessThan(HANDOFF_LIMIT_MS);
    expect(waiter.isAcquired).toBe(true);
    const [after] = await entries(inspector, holder.key);
    expect(after, 'out of the line').toBeUndefined();
    await waiter.release();
  });

  it("a lease table of an earlier version (no 'queued' column, no line) gets them on first use", async ({
    expect,
    onTestFinished,
  }) => {
    const { defer } = scope(onTestFinished);
    const schema = `pgfifo_old_${Math.random().toString(36).slice(2, 10)}`;
    const admin = poolFor(defer);
    await admin.query(`CREATE SCHEMA ${schema}`);
    defer(() => admin.query(`DROP SCHEMA ${schema} CASCADE`));
    await admin.query(`
      CREATE TABLE ${schema}.sherlock_locks (
        key text PRIMARY KEY, token text NOT NULL, fence bigint NOT NULL, expires_at timestamptz);
      CREATE SEQUENCE ${schema}.sherlock_locks_fence AS bigint;
      INSERT INTO ${schema}.sherlock_locks VALUES ('held-before', 'old-owner', 1, NULL)`);
    const pool = new pg.Pool({
      connectionString: postgresUrl(),
      options: `-c search_path=${schema}`,
    });
    pool.on('error', () => undefined);
    defer(() => pool.end());
    const old = new PostgresLock('held-before', { client: pool });
    expect(await old.acquire(false), 'the row of the earlier version still holds it').toBe(false);
    const lock = new PostgresLock(uniqueName('pg-upgrade'), { client: pool, expire: 30_000 });
    expect(await lock.acquire(false)).toBe(true);
    const columns = await admin.query(
      `SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = $1 AND column_name IN ('queued', 'last_seen') ORDER BY table_name`,
      [schema],
    );
    expect(columns.rows).toEqual([
      { table_name: 'sherlock_lock_waiters', column_name: 'last_seen' },
      { table_name: 'sherlock_locks', column_name: 'queued' },
    ]);
    await lock.release();
  });

  it('8 waiters on 4 pools: served in the order they queued, fencing tokens strictly increasing in holding order, never two holders', async ({
    expect,
    onTestFinished,
  }) => {
    const { defer } = scope(onTestFinished);
    const inspector = poolFor(defer);
    const pools = [0, 1, 2, 3].map(() => poolFor(defer));
    const name = uniqueName('pg-order');
    const holder = new PostgresLock(name, { client: pools[0] as pg.Pool, expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const order: number[] = [];
    const tokens: bigint[] = [];
    let holding = 0;
    let overlaps = 0;
    const done: Promise<void>[] = [];
    for (let i = 0; i < 8; i++) {
      const lock = new PostgresLock(name, { client: pools[i % 4] as pg.Pool, ...SLOW_POLLING });
      done.push(
        lock.acquire().then(async () => {
          if (++holding > 1) overlaps++;
          order.push(i);
          tokens.push(BigInt(lock.fencingToken ?? -1));
          await delay(5);
          holding--;
          await lock.release();
        }),
      );
      await queued(inspector, holder.key, i + 1);
    }
    await holder.release();
    await Promise.all(done);
    expect(order).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(overlaps).toBe(0);
    for (let i = 1; i < tokens.length; i++) {
      expect(tokens[i]).toBeGreaterThan(tokens[i - 1] ?? 0n);
    }
    expect(await entries(inspector, holder.key)).toEqual([]);
  });
});
