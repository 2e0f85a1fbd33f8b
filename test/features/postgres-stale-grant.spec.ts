/**
 * A PostgreSQL waiter frozen (SIGSTOP: as a long GC pause or a stalled VM) while a release grants
 * it the lock by a NOTIFY: the message waits in its socket while the grant expires at the server
 * and another client takes the lock. On resume the waiter must not start holding that stale
 * grant (two holders): it reads the server's time of the grant in the message, sees the grant
 * expired, and queues again; it gets the lock after the other holder releases, with a higher
 * fencing token. A real child process (test/fixtures/postgres-stale-grant-worker.ts) on the real
 * server. And the message's two forms: dated for a waiter whose id ends with `.`, the older
 * `<id> <fencing token>` for an older client's waiter (a rolling upgrade).
 */
import { randomBytes } from 'node:crypto';

import { PostgresLock } from 'nestjs-sherlock';
import pg from 'pg';
import { describe, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { spawnStaleGrantChild } from '../support/stale-grant-child.js';
import { postgresUrl } from '../support/env.js';
import { delay, waitFor } from '../support/helpers.js';
import { scope } from '../support/locks.js';

describe('postgres: a grant that expired while its waiter was frozen', () => {
  /** A fresh pool, ended after the test. */
  const poolFor = (defer: (fn: () => unknown) => void) => {
    const pool = new pg.Pool({ connectionString: postgresUrl() });
    pool.on('error', () => undefined);
    defer(() => pool.end());
    return pool;
  };

  it('does not start a holding: the waiter queues again and gets it after the new holder', async ({
    expect,
    onTestFinished,
  }) => {
    const { defer } = scope(onTestFinished);
    const inspector = poolFor(defer);
    const name = uniqueName('pg-stale-grant');
    const first = new PostgresLock(name, { client: poolFor(defer), expire: 30_000 });
    const second = new PostgresLock(name, { client: poolFor(defer), expire: 30_000 });
    const key = first.key;
    const line = async () =>
      (
        await inspector.query(`SELECT token FROM sherlock_lock_waiters WHERE key = $1`, [key])
      ).rows.map((row) => String(row.token));
    /** The token of the live lease of `key`, if any. */
    const holder = async () =>
      (
        await inspector.query(
          `SELECT token FROM sherlock_locks WHERE key = $1
              AND (expires_at IS NULL OR expires_at > clock_timestamp())`,
          [key],
        )
      ).rows.map((row) => String(row.token))[0];
    expect(await first.acquire(false)).toBe(true);

    const { child, acquired, secondHolds, exited, output } = spawnStaleGrantChild(
      'postgres-stale-grant-worker.ts',
      [postgresUrl(), name],
      defer,
    );

    // The child waits in line (its entry is in the line), then is frozen.
    await waitFor(async () => (await line()).length === 1, {
      what: 'the child queued',
      timeout: 20_000,
    });
    const [childToken] = await line();
    expect(child.kill('SIGSTOP')).toBe(true);
    // The release grants the frozen child by a NOTIFY (its 1 s expiry starts now).
    await first.release();
    expect(await line(), 'granted to the frozen child').toEqual([]);
    expect(await holder(), 'granted to the frozen child').toBe(childToken);
    // The grant expires at the server; another client takes it.
    await waitFor(async () => (await holder()) === undefined, {
      what: 'the grant expired',
      timeout: 10_000,
    });
    await delay(1_000);
    expect(await second.acquire(false)).toBe(true);
    secondHolds(true);
    // The child resumes and reads the old message while `second` holds.
    expect(child.kill('SIGCONT')).toBe(true);
    await delay(3_000);
    expect(acquired, 'no holding started from the stale grant').toEqual([]);
    expect(await line(), 'the child queued again').toEqual([childToken]);

    // `second` releases: the child is granted now, with a higher fencing token.
    secondHolds(false);
    await second.release();
    await waitFor(() => acquired.length > 0, { what: 'the child acquired', timeout: 20_000 });
    expect(await exited, output()).toBe(0);
    expect(acquired).toHaveLength(1);
    const [holding] = acquired;
    expect(holding?.whileSecondHeld).toBe(false);
    expect(holding?.aborted).toBe(false);
    expect(BigInt(holding?.token ?? -1)).toBeGreaterThan(BigInt(second.fencingToken ?? -1));
  }, 60_000);

  it("dates the grant for a waiter whose id ends with '.', and sends an older client's waiter the older <id> <fencing token>", async ({
    expect,
    onTestFinished,
  }) => {
    const { defer } = scope(onTestFinished);
    const pool = poolFor(defer);
    const listening = new pg.Client({ connectionString: postgresUrl() });
    listening.on('error', () => undefined);
    await listening.connect();
    defer(() => listening.end());
    const channel = `sherlock_grant_test_${randomBytes(8).toString('hex')}`;
    const messages: string[] = [];
    listening.on('notification', ({ payload }) => messages.push(payload ?? ''));
    await listening.query(`LISTEN ${channel}`);
    const pid = Number(
      (await listening.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid,
    );
    const serverMs = async () =>
      Number(
        (await pool.query(`SELECT floor(extract(epoch FROM clock_timestamp()) * 1000) AS ms`))
          .rows[0]?.ms,
      );

    for (const id of ['old', 'new.']) {
      const holder = new PostgresLock(uniqueName('pg-grant-message'), {
        client: pool,
        expire: 30_000,
      });
      expect(await holder.acquire(false)).toBe(true);
      // A waiter in line, as its client would queue it (the listening connection above).
      await pool.query(
        `INSERT INTO sherlock_lock_waiters (key, token, channel, id, pid, expire, last_seen)
         VALUES ($1, $2, $3, $4, $5, 30000, clock_timestamp())`,
        [holder.key, `waiter-${id}`, channel, id, pid],
      );
      // And the mark a joining waiter sets, so that the release takes the line's way.
      await pool.query(`UPDATE sherlock_locks SET queued = true WHERE key = $1`, [holder.key]);
      messages.length = 0;
      const before = await serverMs();
      await holder.release();
      const after = await serverMs();
      await waitFor(() => messages.length > 0, { what: `the grant to ${id}`, timeout: 10_000 });
      const fence = String(
        (await pool.query(`SELECT fence FROM sherlock_locks WHERE key = $1`, [holder.key])).rows[0]
          ?.fence,
      );
      const [message] = messages;
      if (id === 'old') {
        expect(message, 'the older form').toBe(`old ${fence}`);
      } else {
        const [gotId, gotFence, ms] = (message ?? '').split(' ');
        expect([gotId, gotFence]).toEqual(['new.', fence]);
        expect(Number(ms), "the server's time of the grant").toBeGreaterThanOrEqual(before);
        expect(Number(ms)).toBeLessThanOrEqual(after);
      }
      await pool.query(`DELETE FROM sherlock_locks WHERE key = $1`, [holder.key]);
    }
  }, 30_000);
});
