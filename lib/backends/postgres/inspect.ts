/**
 * Inspection for the postgres backend (issue 12): a lock is a row of the lease table (key, owner
 * token, fencing token, expiry). Inspect reads the row if it has not expired; list is one SELECT
 * of the live rows whose keys start with the namespace and prefix; force-release deletes the live
 * row whoever holds it and gives the lock to the first live waiter in line, as a release does (one
 * transaction: line.ts `forceReleaseSql`). Each reads PostgreSQL's own clock. Inspect counts the
 * live waiters in the key's line (line.ts).
 */
import type {
  InspectionBackend,
  ListedLock,
  ListTarget,
  LockTarget,
  StoredLock,
} from '../../core/backend.js';
import { nameOfKey } from '../../core/inspect-keys.js';
import {
  FORCED_AT,
  forceReleaseSql,
  type LineSql,
  LIVE_WAITER,
  POSTGRES_WAITERS_TABLE,
} from './line.js';
import { RELEASE_CHANNEL } from './listener.js';

/** How a statement is run: the backend's query (the schema set up on first use). */
export type PgQuery = (
  target: { readonly client: object },
  text: string,
  values: readonly unknown[],
) => Promise<{ rows: Record<string, unknown>[] }>;

/** How several statements are run as one simple query (one transaction): a result per statement. */
export type PgQueryMany = (
  target: { readonly client: object },
  text: string,
) => Promise<{ rows: Record<string, unknown>[] }[]>;

/** The row is a live lock (not yet expired). */
const LIVE = `(expires_at IS NULL OR expires_at > clock_timestamp())`;

/** The ms left on the server's clock (-1: no expiry). */
const TTL = `CASE WHEN expires_at IS NULL THEN -1
  ELSE greatest(0, ceil(extract(epoch FROM expires_at - clock_timestamp()) * 1000)) END`;

/** Escapes the LIKE wildcards (and the escape character) of `text`. */
export const likeEscape = (text: string) => text.replace(/[\\%_]/gu, '\\$&');

function storedOf(row: Record<string, unknown>): StoredLock {
  const stored = {
    owner: String(row.token),
    ttl: Number(row.ttl),
    fencingToken: String(row.fence),
  };
  return row.waiting === undefined ? stored : { ...stored, waiting: Number(row.waiting) };
}

/**
 * The postgres backend's inspection primitives, running statements with `query` (and the
 * force-release, an operation on the line of `line.table`, with `queryMany`).
 */
export function postgresInspection(
  line: LineSql,
  query: PgQuery,
  queryMany: PgQueryMany,
): InspectionBackend {
  const { table } = line;
  const INSPECT = `
SELECT token, fence::text AS fence, ${TTL} AS ttl,
       (SELECT count(*) FROM ${POSTGRES_WAITERS_TABLE} w
         WHERE w.key = $1 AND ${LIVE_WAITER('w')})::int AS waiting
  FROM ${table} WHERE key = $1 AND ${LIVE}`;

  const LIST = `
SELECT key, token, fence::text AS fence, ${TTL} AS ttl
  FROM ${table} WHERE key LIKE $1 ESCAPE '\\' AND ${LIVE}
 ORDER BY key LIMIT $2`;

  return {
    async inspect(lock: LockTarget) {
      const row = (await query(lock, INSPECT, [lock.key])).rows[0];
      return row ? storedOf(row) : null;
    },

    async list(target: ListTarget) {
      const { namespace, prefix, limit } = target;
      const head = namespace === null ? '' : `${namespace}_`;
      const pattern = `${likeEscape(head)}${likeEscape(prefix)}%`;
      const { rows } = await query(target, LIST, [pattern, limit]);
      const listed: ListedLock[] = [];
      for (const row of rows) {
        const key = String(row.key);
        const name = nameOfKey(key, namespace, prefix);
        if (name !== undefined) listed.push({ name, key, ...storedOf(row) });
      }
      return listed;
    },

    async forceRelease(lock: LockTarget) {
      const results = await queryMany(lock, forceReleaseSql(line, lock.key, RELEASE_CHANNEL));
      const row = results[FORCED_AT]?.rows[0];
      return row ? storedOf(row) : null;
    },
  };
}
