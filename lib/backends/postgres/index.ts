import type { ClientClass, LockBackend, LockTarget } from '../../core/backend.js';
import { BaseLock, type BaseLockOptions } from '../../core/base-lock.js';
import { grantOf, noteServerTime, takeGrant } from '../../core/dated-grant.js';
import { loadDriver } from '../../core/driver.js';
import { now } from '../../core/timing.js';
import { backends } from '../../core/registry.js';
import { postgresInspection } from './inspect.js';
import {
  LINE_LOCK_SPACE,
  LIVE_WAITER,
  leaveSql,
  type LineSql,
  POSTGRES_WAITERS_TABLE,
  queuedAttemptSql,
  RELEASED_AT,
  releaseSql,
  RENEW_WITHIN_MS,
  WAITERS_SCHEMA,
} from './line.js';
import { type ListeningClient, type PgWaiter, ReleaseListener } from './listener.js';

/** The part of a `pg.Pool` this backend uses (the library's own types stay optional). */
export interface PgPoolLike {
  query(
    text: string,
    values?: readonly unknown[],
  ): Promise<{ rows: Record<string, unknown>[]; rowCount: number | null }>;
  end(): Promise<void>;
  /** The options the pool was made with: the listening connection is made from them. */
  readonly options: object;
}

interface PgEvents {
  on(event: 'error', listener: (error: Error) => void): unknown;
}

interface PgModule {
  Pool: ClientClass & (new (options?: object) => PgPoolLike & PgEvents);
  Client: new (options?: object) => ListeningClient;
}

const pg = () => loadDriver<PgModule>('postgres', 'pg');

/** The table of leases and the sequence of fencing tokens (in the pool's search_path). */
export const POSTGRES_TABLE = 'sherlock_locks';
export const POSTGRES_FENCE_SEQUENCE = 'sherlock_locks_fence';
export { POSTGRES_WAITERS_TABLE };

const LINE: LineSql = { table: POSTGRES_TABLE, sequence: POSTGRES_FENCE_SEQUENCE };

/** Options of a PostgresLock: the lock options and an optional `pg.Pool` client. */
export type PostgresLockOptions = BaseLockOptions;

/**
 * A lock in PostgreSQL: a row of the lease table `sherlock_locks` (key, owner token, fencing
 * token, expiry), taken, released and extended by single statements that compare the owner token
 * and read PostgreSQL's own clock (`clock_timestamp()`), so that no client's clock matters. A
 * lock is held by its row, not by a connection: each primitive borrows a pooled connection for
 * one statement. Fencing tokens come from the sequence `sherlock_locks_fence`. Blocking acquires
 * wait in a line (`sherlock_lock_waiters`): a release gives the lock to the first live waiter
 * and tells it with `NOTIFY` (first come, first served). The tables and the sequence are created
 * on first use if absent. See docs/postgres.md.
 *
 * @example
 * import pg from 'pg';
 * const lock = new PostgresLock('deploy', { client: new pg.Pool({ connectionString: process.env.DATABASE_URL }) });
 */
export class PostgresLock extends BaseLock {
  constructor(name: string, options?: PostgresLockOptions) {
    super(name, options);
  }
}

const poolOf = (lock: Pick<LockTarget, 'client'>) => lock.client as PgPoolLike;

/** The schema of each pool, set up once (again after a failure). */
const schemas = new WeakMap<PgPoolLike, Promise<void>>();

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ${POSTGRES_TABLE} (
  key text PRIMARY KEY,
  token text NOT NULL,
  fence bigint NOT NULL,
  expires_at timestamptz,
  queued boolean NOT NULL DEFAULT false
);
ALTER TABLE ${POSTGRES_TABLE} ADD COLUMN IF NOT EXISTS queued boolean NOT NULL DEFAULT false;
CREATE SEQUENCE IF NOT EXISTS ${POSTGRES_FENCE_SEQUENCE} AS bigint;
${WAITERS_SCHEMA}`;

/**
 * PostgreSQL's codes for a concurrent CREATE of the same table or type (42710: the table's row
 * type, created by another session first, "type ... already exists").
 */
const CREATED_CONCURRENTLY = new Set(['23505', '42P07', '42710']);

async function setUp(pool: PgPoolLike): Promise<void> {
  // Created only if absent: a role without CREATE on the schema can use tables made by a migration.
  const { rows } = await pool.query(
    `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL
        AND to_regclass($3) IS NOT NULL
        AND EXISTS (SELECT 1 FROM pg_attribute
                     WHERE attrelid = to_regclass($1) AND attname = 'queued' AND NOT attisdropped)
        AS ready`,
    [POSTGRES_TABLE, POSTGRES_FENCE_SEQUENCE, POSTGRES_WAITERS_TABLE],
  );
  if (rows[0]?.ready === true) return;
  try {
    await pool.query(SCHEMA);
  } catch (error) {
    if (!CREATED_CONCURRENTLY.has(String((error as { code?: unknown }).code))) throw error;
    await pool.query(SCHEMA); // the other creator has committed: now a no-op
  }
}

/** Runs one statement once the pool's schema is set up. */
async function query(lock: Pick<LockTarget, 'client'>, text: string, values: readonly unknown[]) {
  const pool = poolOf(lock);
  let ready = schemas.get(pool);
  if (!ready) {
    ready = setUp(pool);
    schemas.set(pool, ready);
    ready.catch(() => schemas.delete(pool));
  }
  await ready;
  return pool.query(text, values);
}

/** `expire` ms from now on the server's clock (NULL: never). */
const EXPIRY = `clock_timestamp() + $3::double precision * interval '1 millisecond'`;
/** The row is a live lock (not yet expired). */
const LIVE = `(expires_at IS NULL OR expires_at > clock_timestamp())`;

/**
 * Takes the lock if its row is absent or expired, in one statement: an INSERT whose conflict with
 * an expired row overwrites it, unless the row says waiters are in line (`queued`, set by each
 * waiter that joins: line.ts) and `line` is true (some of them are live). The outer SELECT reads
 * the snapshot from before the INSERT: when refused, the holder's remaining time (-1: no expiry;
 * 0: expired), and whether it was refused for a line only (`queued`). While an operation on the
 * key's line runs (it holds the line's advisory lock), a newcomer is refused without waiting: it
 * would take the lock from under a waiter that is joining.
 */
const acquireSql = (line: string) => `
WITH taken AS (
  INSERT INTO ${POSTGRES_TABLE} AS l (key, token, fence, expires_at)
  SELECT $1, $2, nextval('${POSTGRES_FENCE_SEQUENCE}'), ${EXPIRY}
   WHERE pg_try_advisory_xact_lock_shared(${LINE_LOCK_SPACE}, hashtext($1))
  ON CONFLICT (key) DO UPDATE
    SET token = excluded.token, fence = excluded.fence, expires_at = excluded.expires_at
    WHERE l.expires_at <= clock_timestamp() AND (NOT l.queued OR NOT ${line})
  RETURNING fence
)
SELECT (SELECT fence::text FROM taken) AS fence,
       (SELECT CASE WHEN expires_at IS NULL THEN -1
                    ELSE greatest(0, ceil(extract(epoch FROM expires_at - clock_timestamp()) * 1000))
               END
          FROM ${POSTGRES_TABLE} WHERE key = $1) AS ttl,
       (SELECT queued FROM ${POSTGRES_TABLE} WHERE key = $1) AS queued`;

/** The uncontended case: a row marked `queued` is left to its line without looking at it. */
const ACQUIRE = acquireSql('true');
/** Refused by the mark of an expired row: is a waiter of that line live? (Else take it.) */
const ACQUIRE_PAST_DEAD_LINE = acquireSql(`EXISTS (
  SELECT 1 FROM ${POSTGRES_WAITERS_TABLE} w WHERE w.key = $1 AND ${LIVE_WAITER('w')})`);

const EXTEND = `
UPDATE ${POSTGRES_TABLE} SET expires_at = ${EXPIRY}
 WHERE key = $1 AND token = $2 AND ${LIVE}`;

const LOCKED = `SELECT 1 FROM ${POSTGRES_TABLE} WHERE key = $1 AND ${LIVE}`;

/** The listening connection of each pool. */
const listeners = new WeakMap<PgPoolLike, ReleaseListener>();

function listenerOf(pool: PgPoolLike): ReleaseListener {
  let listener = listeners.get(pool);
  if (!listener) {
    listener = new ReleaseListener(() => new (pg().Client)(pool.options));
    listeners.set(pool, listener);
  }
  return listener;
}

/**
 * The release of a lock nobody waits for: one statement. A waiter that joins the line sets the
 * row's `queued` first (holding the row until it commits), so a release that finds it set (or
 * that finds nothing to delete) takes the line's way (line.ts), which grants the next waiter.
 */
const RELEASE_UNQUEUED = `
DELETE FROM ${POSTGRES_TABLE} WHERE key = $1 AND token = $2 AND ${LIVE} AND NOT queued`;

/**
 * The keys whose last release from this pool gave the lock to a waiter, and when: their next
 * release takes the line's way at once (one round trip, not the one statement first and then the
 * line's). Only a hint: either way is correct.
 */
const lineHints = new WeakMap<PgPoolLike, Map<string, number>>();
const LINE_HINT_MS = 1_000;
const LINE_HINT_KEYS = 1_000;

function hintsOf(pool: PgPoolLike): Map<string, number> {
  let hints = lineHints.get(pool);
  if (!hints) {
    hints = new Map();
    lineHints.set(pool, hints);
  }
  return hints;
}

/** The results of a simple query of several statements, one per statement. */
async function queryMany(lock: Pick<LockTarget, 'client'>, text: string) {
  const reply = (await query(lock, text, [])) as unknown;
  return (Array.isArray(reply) ? reply : [reply]) as {
    rows: Record<string, unknown>[];
    rowCount: number | null;
  }[];
}

/** A pool from a connection string (`postgres://user:pass@host:5432/db`) or `pg.Pool` options. */
function connectPostgres(connection: unknown): PgPoolLike {
  const { Pool } = pg();
  const made = (options: object) => {
    const pool = new Pool(options);
    // An idle connection that fails (a server restart) is dropped by the pool; unheard, its
    // 'error' would end the process. The next query reports the failure where it belongs.
    pool.on('error', () => undefined);
    return pool;
  };
  if (connection === undefined) return made({ host: '127.0.0.1', port: 5432 });
  if (typeof connection === 'string' && connection.trim().length > 0) {
    return made({ connectionString: connection });
  }
  if (typeof connection === 'object' && connection !== null && !Array.isArray(connection)) {
    return made({ ...connection });
  }
  throw new TypeError(
    `Invalid option 'connection': ${JSON.stringify(connection)}; expected a PostgreSQL connection string (postgres://user:password@host:5432/database) or pg.Pool options for the postgres backend`,
  );
}

/** The postgres backend: a table of leases, fencing from a sequence, LISTEN/NOTIFY hand-off. */
const postgresBackend: LockBackend<PgPoolLike, undefined, PgWaiter> = {
  name: 'postgres',
  library: 'pg',
  capabilities: {
    fencing: true,
    extend: true,
    handOff: 'push',
    crossProcess: true,
    expiry: { granularity: 1, minimum: 1, maximum: null, earlyBy: 0 },
  },
  unsupported: {
    semaphore:
      'its lease table holds one row per lock; a semaphore needs a table of permits, which this version does not have',
    readWrite:
      'its lease table holds one row per lock with one owner; a read-write lock needs a row per reader and a waiting-writer mark that keeps new readers out, which this version does not have; use the redis or etcd backend',
    election:
      "its lease row keeps no published value next to the holder (the leader's id, host, pid and term that leader() reads), which this version does not store; use the redis or etcd backend",
  },
  clientClass: () => pg().Pool,
  connect: connectPostgres,
  close: async (pool) => {
    listeners.get(pool)?.close();
    await pool.end();
  },

  async acquire(lock, token, waiter) {
    const pushed = waiter?.grant;
    if (pushed && waiter?.token !== undefined) {
      // Granted by a release: the message is the answer, no round trip; unless the grant expired
      // before it was read (this process was frozen): then the queued attempt below says whether
      // the lock is still this waiter's (its expiry starts again) or queues it again.
      waiter.grant = undefined;
      const dated = grantOf(pushed.message, waiter.queued, pushed.arrival);
      const granted = takeGrant({ grant: dated, token: waiter.token }, lock);
      if (granted) return granted;
    }
    if (waiter && !waiter.armed && !waiter.closed) {
      // The pool's connection listens already (another waiter's): join the line at once.
      const listener = listenerOf(poolOf(lock));
      if (listener.pid !== 0) {
        listener.enlist(waiter);
        waiter.armed = true;
      }
    }
    if (waiter?.armed && waiter.id !== undefined) {
      // In line (or joining it): the waiter's first queued attempt gives it its token.
      const listener = listenerOf(poolOf(lock));
      waiter.token ??= token;
      const own = waiter.token;
      const sentAt = now();
      const results = await queryMany(
        lock,
        queuedAttemptSql(LINE, {
          key: lock.key,
          token: own,
          channel: listener.channel,
          id: waiter.id,
          pid: listener.pid,
          expire: lock.expire,
        }),
      );
      const row = results[results.length - 1]?.rows[0];
      if (typeof row?.fence === 'string') {
        return own === token
          ? { granted: true, fencingToken: row.fence }
          : { granted: true, fencingToken: row.fence, ownerToken: own };
      }
      // The server's time then, and ours: they date a grant's message (core/dated-grant.ts).
      noteServerTime(waiter, sentAt, row?.server_ms);
      const ttl = row?.ttl;
      return {
        granted: false,
        ...(ttl === null || ttl === undefined ? {} : { holderTtl: Number(ttl) }),
        position: Number(row?.position ?? 0),
        renewWithin: RENEW_WITHIN_MS,
      };
    }
    let row = (await query(lock, ACQUIRE, [lock.key, token, lock.expire])).rows[0];
    if (row?.fence === null && row.ttl !== null && Number(row.ttl) === 0 && row.queued === true) {
      row = (await query(lock, ACQUIRE_PAST_DEAD_LINE, [lock.key, token, lock.expire])).rows[0];
    }
    if (typeof row?.fence === 'string') return { granted: true, fencingToken: row.fence };
    const ttl = row?.ttl;
    return ttl === null || ttl === undefined
      ? { granted: false }
      : { granted: false, holderTtl: Number(ttl) };
  },

  async release(lock, token) {
    const hints = hintsOf(poolOf(lock));
    const hinted = hints.get(lock.key);
    if (hinted === undefined || now() - hinted > LINE_HINT_MS) {
      if (((await query(lock, RELEASE_UNQUEUED, [lock.key, token])).rowCount ?? 0) > 0) {
        return true;
      }
    }
    const results = await queryMany(lock, releaseSql(LINE, lock.key, token));
    hints.delete(lock.key);
    if ((results[results.length - 1]?.rows.length ?? 0) > 0) {
      if (hints.size >= LINE_HINT_KEYS) hints.clear();
      hints.set(lock.key, now());
    }
    return (results[RELEASED_AT]?.rowCount ?? 0) > 0;
  },

  async extend(lock, token, ttl) {
    return ((await query(lock, EXTEND, [lock.key, token, ttl])).rowCount ?? 0) > 0;
  },

  async locked(lock) {
    return (await query(lock, LOCKED, [lock.key])).rows.length > 0;
  },

  /** `SELECT 1` on a pooled connection (the health check bounds it by `timeout`). */
  async ping(pool) {
    await pool.query('SELECT 1');
  },

  inspection: postgresInspection(LINE, query, queryMany),

  /**
   * A waiter registers with its pool's listening connection before its first attempt (no I/O);
   * after a refused attempt, `listen` makes sure that connection listens. A waiter is armed only
   * when the connection listened before its last attempt: the first time, the core attempts once
   * more at once, and that attempt puts it in line (line.ts) with the connection's channel and
   * pid. A release gives the lock to the first live waiter in line and tells it alone; a lock
   * that expires sends nothing, and its waiters wake at the holder's expiry (`holderTtl`): their
   * attempt gives it to the first in line. Attempts refresh the entry (`renewWithin`).
   */
  handOff: {
    open(lock, wake) {
      const waiter: PgWaiter = { key: lock.key, wake, armed: false, closed: false };
      listenerOf(poolOf(lock)).add(waiter);
      return waiter;
    },
    async listen(lock, waiter) {
      if (waiter.armed) return true;
      const listener = listenerOf(poolOf(lock));
      await listener.start();
      listener.enlist(waiter);
      waiter.armed = true;
      return false;
    },
    // Not granted (timed out, aborted, failed): leave the line, and give back (to the next in
    // line) the lock if a release granted it meanwhile, the message being on its way or lost.
    close(lock, waiter, granted) {
      waiter.closed = true;
      listenerOf(poolOf(lock)).remove(waiter);
      if (!granted && waiter.token !== undefined) {
        queryMany(lock, leaveSql(LINE, lock.key, waiter.token)).catch(() => undefined);
      }
    },
  },
};

export const POSTGRES = backends.register({ ...postgresBackend, lockClass: PostgresLock });
