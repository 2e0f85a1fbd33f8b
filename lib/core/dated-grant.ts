import { lossMargin } from './hold.js';
import { now } from './timing.js';

/**
 * A grant pushed by a message and dated by the server's clock, for backends whose release gives
 * the lock to a waiter and tells it (Redis: backends/redis/direct-grant.ts; PostgreSQL:
 * backends/postgres/line.ts). The arrival of the message alone says nothing of a message that
 * waited in the socket while this process was frozen (a GC pause, SIGSTOP, a stalled VM): taken
 * then, the waiter would hold a lock that expired at the server and may be another's. The release
 * puts the server's time of the grant in the message; the waiter keeps the server's time of one of
 * its attempts next to its own clock; together they say when the grant was made at the earliest
 * in this process's clock, and a grant whose expiry has passed by then is not taken.
 */

/**
 * The end of every waiter id: tells a release (Redis: scripts.ts GRANT_NEXT; PostgreSQL: line.ts
 * grantNext) that this waiter reads the server's time of a grant (`<id> <fencing token> <server
 * ms>`); an older client's waiter id has no `.`, and gets the older `<id> <fencing token>` (a
 * rolling upgrade).
 */
export const TIMED_ID = '.';

/**
 * An attempt of a waiter: when it was sent (`now()`) and the server's time when it ran (ms, in
 * its reply). The server ran it after it was sent, so a grant made at server time `t` was made
 * at `sentAt + (t - serverMs)` in this process's clock at the earliest.
 */
export interface Queued {
  readonly sentAt: number;
  readonly serverMs: number;
}

/** A grant received by message: its fencing token, and when it was made at the earliest. */
export interface DatedGrant {
  readonly fencingToken: string;
  readonly at: number;
}

/**
 * A grant's message (`<fencing token>`, or `<fencing token> <server ms>` from a release that
 * dates it) that arrived at `arrival`: its fencing token, and when the grant was made at the
 * earliest in this process's clock: the earlier of the arrival and what the server's time of the
 * grant against the server's time of an attempt (`queued`) says. At least as safe as the arrival
 * alone, even after a failover to a server with another clock. An older releaser's message (no
 * server time): the arrival.
 */
export function grantOf(message: string, queued: Queued | undefined, arrival: number): DatedGrant {
  const space = message.indexOf(' ');
  if (space === -1) return { fencingToken: message, at: arrival };
  const fencingToken = message.slice(0, space);
  const grantedMs = Number(message.slice(space + 1));
  if (queued === undefined || !Number.isFinite(grantedMs)) return { fencingToken, at: arrival };
  return { fencingToken, at: Math.min(arrival, queued.sentAt + (grantedMs - queued.serverMs)) };
}

/**
 * Keeps the server's time (ms) an attempt sent at `sentAt` replied, when it is a number (or a
 * decimal string), as the waiter's pair of clocks.
 */
export function noteServerTime(
  waiter: { queued?: Queued } | undefined,
  sentAt: number,
  serverMs: unknown,
): void {
  const ms = typeof serverMs === 'string' && serverMs !== '' ? Number(serverMs) : serverMs;
  if (waiter !== undefined && typeof ms === 'number' && Number.isFinite(ms)) {
    waiter.queued = { sentAt, serverMs: ms };
  }
}

/**
 * Whether a holding of `ttl` ms (null: no expiry) whose expiry started at `at` would be lost by
 * now: its expiry less the loss margin (core/hold.ts) has passed.
 */
export const grantOutlived = (at: number, ttl: number | null): boolean =>
  ttl !== null && at + ttl - lossMargin(ttl) <= now();

/**
 * A grant the waiter received by message, taken (once) as the attempt's outcome; unless it was
 * made so long ago that the holding's expiry (less the loss margin) has passed (this process was
 * frozen while the message waited): then it is dropped, and the attempt that follows says whether
 * the waiter still holds (its expiry starts again) or queues it again.
 */
export function takeGrant(
  waiter: { grant?: DatedGrant | undefined; readonly token?: string | undefined } | undefined,
  target: { readonly expire: number | null },
) {
  const grant = waiter?.grant;
  if (!grant || waiter?.token === undefined) return undefined;
  waiter.grant = undefined;
  const { fencingToken, at } = grant;
  if (grantOutlived(at, target.expire)) return undefined;
  return { granted: true as const, fencingToken, since: at, ownerToken: waiter.token };
}
