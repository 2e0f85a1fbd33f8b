/**
 * The line of waiters of the postgres backend (first come, first served, one waiter woken per
 * release). A blocking acquire that finds the lock taken, once its pool's listening connection
 * listens, puts an entry in `sherlock_lock_waiters`: its owner token, its expiry, the channel its
 * listening connection listens on and its id there, that connection's backend pid, and when it
 * was last seen. A release deletes the holder's row and, in the same transaction, gives the lock
 * to the first live waiter in line (its row with the waiter's token, expiry and a fresh fencing
 * token), takes it out of the line, and `pg_notify`s its channel with `<id> <fencing token> <server
 * ms>` (the server's time of the grant; `<id> <fencing token>` to an older client's waiter, whose
 * id does not end with `.`: core/dated-grant.ts `TIMED_ID`): the waiter holds the lock from the
 * message alone, unless that time says the grant expired before the waiter read it (its process was
 * frozen): then its next attempt holds the lock if still its own, or queues it again.
 *
 * A force-release (inspect.ts) is a release as whoever holds the lock: it deletes the live row
 * and, in the same transaction, gives the lock to the first live waiter in line the same way.
 *
 * Each operation on a line is one round trip: several statements in one simple query, which
 * PostgreSQL runs as one transaction, the first taking a transaction advisory lock of the key, so
 * that each statement after it reads what the operations before it committed (a release never
 * misses a waiter that queued while it ran). Values are inlined hex-encoded (`decode(...,'hex')`):
 * no user text is ever part of the SQL's syntax.
 *
 * A waiter is live while its listening connection is (its pid in `pg_stat_get_activity`) and it
 * was seen less than `STALE_AFTER_MS` ago: each attempt refreshes it, and the core attempts at
 * least every `RENEW_WITHIN_MS` (`renewWithin`). Dead or stale entries are skipped and deleted.
 */

/** The line of waiters (in the pool's search_path). */
export const POSTGRES_WAITERS_TABLE = 'sherlock_lock_waiters';

/** An entry not refreshed for this long is dead: its process stopped attempting. */
export const STALE_AFTER_MS = 15_000;
/** How often a live waiter refreshes its entry (an attempt), well within `STALE_AFTER_MS`. */
export const RENEW_WITHIN_MS = 5_000;

/**
 * The advisory lock space of the line (the two-int form, first key): `pg_advisory_xact_lock(
 * LINE_LOCK_SPACE, hashtext(key))`, held for one operation's transaction only.
 */
export const LINE_LOCK_SPACE = 0x53484c4b; // 'SHLK'

export const WAITERS_SCHEMA = `
CREATE TABLE IF NOT EXISTS ${POSTGRES_WAITERS_TABLE} (
  key text NOT NULL,
  seq bigserial NOT NULL,
  token text NOT NULL,
  channel text NOT NULL,
  id text NOT NULL,
  pid integer NOT NULL,
  expire double precision,
  enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  last_seen timestamptz NOT NULL,
  PRIMARY KEY (key, token)
);
CREATE INDEX IF NOT EXISTS ${POSTGRES_WAITERS_TABLE}_line ON ${POSTGRES_WAITERS_TABLE} (key, seq)`;

/** A text value inlined in SQL: hex-encoded UTF-8, never parsed as SQL. */
export function text(value: string): string {
  return `convert_from(decode('${Buffer.from(value, 'utf8').toString('hex')}', 'hex'), 'UTF8')`;
}

/** A number of ms inlined in SQL (NULL: none). */
export function millis(value: number | null): string {
  if (value === null) return 'NULL::double precision';
  if (!Number.isFinite(value)) throw new RangeError(`not a finite number of ms: ${value}`);
  return `${value}::double precision`;
}

/** The entry `w` is live: its listener is connected and it was seen recently. */
export const LIVE_WAITER = (w: string) =>
  `(${w}.last_seen >= clock_timestamp() - interval '${STALE_AFTER_MS} milliseconds'
    AND EXISTS (SELECT 1 FROM pg_stat_get_activity(${w}.pid)))`;

/** The statements an operation on a line runs, joined into one simple query (one transaction). */
export interface LineSql {
  readonly table: string;
  readonly sequence: string;
}

const LIVE_LOCK = `(expires_at IS NULL OR expires_at > clock_timestamp())`;

/** The holder's remaining time (-1: no expiry; NULL: nobody holds it). */
const HOLDER_TTL = (table: string, key: string) => `(SELECT CASE WHEN expires_at IS NULL THEN -1
    ELSE greatest(0, ceil(extract(epoch FROM expires_at - clock_timestamp()) * 1000)) END
  FROM ${table} WHERE key = ${key} AND ${LIVE_LOCK})`;

/** Waits for the key's line to be ours for this transaction. */
const serialize = (key: string) =>
  `SELECT pg_advisory_xact_lock(${LINE_LOCK_SPACE}, hashtext(${key}))`;

/** Deletes the dead or stale entries of the line (but `keep`'s). */
const prune = (key: string, keep: string) => `
DELETE FROM ${POSTGRES_WAITERS_TABLE} w WHERE w.key = ${key} AND w.token <> ${keep}
  AND NOT ${LIVE_WAITER('w')}`;

/**
 * A free (or expired) lock goes to the first in line: its row set to that waiter's token, expiry
 * and a new fencing token; the entry leaves the line; the waiter is told on its channel unless it
 * is `self` (the waiter whose attempt runs this, which reads its grant in the reply). The message
 * carries the server's time of the grant in ms (floored: the expiry counts from it) to a waiter
 * whose id ends with `.`.
 */
const grantNext = ({ table, sequence }: LineSql, key: string, self: string) => `
WITH head AS (
  SELECT key, seq, token, channel, id, expire, clock_timestamp() AS granted_at
    FROM ${POSTGRES_WAITERS_TABLE}
   WHERE key = ${key} ORDER BY seq LIMIT 1
), taken AS (
  INSERT INTO ${table} AS l (key, token, fence, expires_at, queued)
  SELECT key, token, nextval('${sequence}'),
         granted_at + expire * interval '1 millisecond',
         EXISTS (SELECT 1 FROM ${POSTGRES_WAITERS_TABLE} o WHERE o.key = head.key AND o.seq <> head.seq)
    FROM head
  ON CONFLICT (key) DO UPDATE
    SET token = excluded.token, fence = excluded.fence, expires_at = excluded.expires_at,
        queued = excluded.queued
    WHERE l.expires_at <= clock_timestamp()
  RETURNING fence
), served AS (
  DELETE FROM ${POSTGRES_WAITERS_TABLE} w USING head, taken
   WHERE w.key = head.key AND w.seq = head.seq RETURNING w.seq
)
SELECT pg_notify(head.channel, head.id || ' ' || taken.fence::text
         || CASE WHEN right(head.id, 1) = '.'
                 THEN ' ' || floor(extract(epoch FROM head.granted_at) * 1000)::bigint::text
                 ELSE '' END)
  FROM head, taken, served WHERE head.token <> ${self}`;

/** What a waiter's attempt sends: who it is and where its grant is told. */
export interface QueuedAttempt {
  readonly key: string;
  /** The waiter's owner token (the one it queued with). */
  readonly token: string;
  readonly channel: string;
  readonly id: string;
  /** Its listening connection's backend pid (0: not connected now). */
  readonly pid: number;
  readonly expire: number | null;
}

/**
 * A waiter's attempt. If a release granted it the lock (the message not read yet, or lost), it
 * holds it: a new fencing token (the one in the message was never used), its expiry counted
 * afresh, and it leaves the line. Else it joins the line (or refreshes its entry: last seen, its
 * listener's pid), and a free lock goes to the first in line, which may be itself. The last
 * statement's row: `fence` (granted) or `ttl` and `position` (refused), and `server_ms`: the
 * server's time when the attempt began (its transaction's start, ms, rounded up), which dates a
 * later grant's message in the waiter's clock (core/dated-grant.ts).
 */
export function queuedAttemptSql(sql: LineSql, attempt: QueuedAttempt): string {
  const { table, sequence } = sql;
  const key = text(attempt.key);
  const token = text(attempt.token);
  const expire = millis(attempt.expire);
  const mine = `SELECT 1 FROM ${table} WHERE key = ${key} AND token = ${token} AND ${LIVE_LOCK}`;
  return [
    serialize(key),
    prune(key, token),
    `UPDATE ${table} SET fence = nextval('${sequence}'),
       expires_at = clock_timestamp() + ${expire} * interval '1 millisecond'
     WHERE key = ${key} AND token = ${token} AND ${LIVE_LOCK}`,
    `DELETE FROM ${POSTGRES_WAITERS_TABLE} WHERE key = ${key} AND token = ${token}
       AND EXISTS (${mine})`,
    `INSERT INTO ${POSTGRES_WAITERS_TABLE} (key, token, channel, id, pid, expire, last_seen)
     SELECT ${key}, ${token}, ${text(attempt.channel)}, ${text(attempt.id)}, ${Math.trunc(attempt.pid)},
            ${expire}, clock_timestamp()
      WHERE NOT EXISTS (${mine})
     ON CONFLICT (key, token) DO UPDATE
       SET channel = excluded.channel, id = excluded.id, pid = excluded.pid,
           expire = excluded.expire, last_seen = excluded.last_seen`,
    grantNext(sql, key, token),
    // Still in line: mark the lock's row (the grant above holds it, whoever holds the lock), so
    // that its release takes the line's way (see RELEASE_UNQUEUED in index.ts).
    `UPDATE ${table} SET queued = true WHERE key = ${key} AND NOT queued
       AND EXISTS (SELECT 1 FROM ${POSTGRES_WAITERS_TABLE} WHERE key = ${key} AND token = ${token})`,
    `SELECT (SELECT fence::text FROM ${table} WHERE key = ${key} AND token = ${token}
              AND ${LIVE_LOCK}) AS fence,
            ${HOLDER_TTL(table, key)} AS ttl,
            (SELECT count(*) FROM ${POSTGRES_WAITERS_TABLE} w
              WHERE w.key = ${key} AND w.seq < (SELECT seq FROM ${POSTGRES_WAITERS_TABLE}
                WHERE key = ${key} AND token = ${token}))::int AS position,
            ceil(extract(epoch FROM transaction_timestamp()) * 1000)::double precision
              AS server_ms`,
  ].join(';\n');
}

/**
 * A release: deletes the row if `token` holds it, then a free lock goes to the first live waiter
 * in line. The third statement's row count says whether `token` held it.
 */
export function releaseSql(sql: LineSql, lockKey: string, ownerToken: string): string {
  const key = text(lockKey);
  const token = text(ownerToken);
  return [
    serialize(key),
    prune(key, "''"),
    `DELETE FROM ${sql.table} WHERE key = ${key} AND token = ${token} AND ${LIVE_LOCK}`,
    grantNext(sql, key, "''"),
  ].join(';\n');
}
/** Index of the statement of `releaseSql` whose row count says whether the lock was released. */
export const RELEASED_AT = 2;

/**
 * A waiter gives up (timeout, abort, a failed attempt): it leaves the line; if a release granted
 * it the lock meanwhile (the message on its way, or lost), it releases it; and a free lock goes
 * to the next in line.
 */
export function leaveSql(sql: LineSql, lockKey: string, waiterToken: string): string {
  const key = text(lockKey);
  const token = text(waiterToken);
  return [
    serialize(key),
    `DELETE FROM ${POSTGRES_WAITERS_TABLE} WHERE key = ${key} AND token = ${token}`,
    `DELETE FROM ${sql.table} WHERE key = ${key} AND token = ${token}`,
    prune(key, "''"),
    grantNext(sql, key, "''"),
  ].join(';\n');
}

/**
 * A force-release: deletes the live row whoever holds it (returning its owner token, fencing
 * token and remaining ms), then, as a release does, a free lock goes to the first live waiter in
 * line (a fresh fencing token, the dated message on its channel). Reading the holder and
 * releasing as it in one transaction, behind the line's advisory lock, nobody can take the lock
 * in between. With nobody left in line it frees the lock and, as before, `NOTIFY`s the key on
 * `releaseChannel` (waking the waiters not in the line now: a listening connection that dropped,
 * an entry pruned as stale). The statement at `FORCED_AT` returns the deleted holding (no row:
 * nobody held it).
 */
export function forceReleaseSql(sql: LineSql, lockKey: string, releaseChannel: string): string {
  const key = text(lockKey);
  return [
    serialize(key),
    prune(key, "''"),
    `WITH gone AS (
       DELETE FROM ${sql.table} WHERE key = ${key} AND ${LIVE_LOCK}
       RETURNING key, token, fence, expires_at
     )
     SELECT token, fence::text AS fence,
            CASE WHEN expires_at IS NULL THEN -1
                 ELSE greatest(0, ceil(extract(epoch FROM expires_at - clock_timestamp()) * 1000))
            END AS ttl,
            CASE WHEN NOT EXISTS (SELECT 1 FROM ${POSTGRES_WAITERS_TABLE} WHERE key = gone.key)
                 THEN pg_notify(${text(releaseChannel)}, gone.key) END AS woken
       FROM gone`,
    grantNext(sql, key, "''"),
  ].join(';\n');
}
/** Index of the statement of `forceReleaseSql` whose row is the deleted holding. */
export const FORCED_AT = 2;
