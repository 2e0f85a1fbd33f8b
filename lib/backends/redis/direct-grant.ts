import type { LockTarget } from '../../core/backend.js';
import { lossMargin } from '../../core/hold.js';
import { newOwnerToken, now } from '../../core/timing.js';
import { ioredis } from './scripts.js';
import { keySlot } from './slots.js';
import { type Joined, type SubscriberSource, WakeChannels } from './wake-channels.js';

/**
 * The waiter of a blocking acquire on a Redis primitive served by direct grant (the lock, the
 * read-write lock, the semaphore): once it listens, its entry `<prefix><owner token> <suffix>` is
 * in the line, and a release may grant it by a message alone.
 */
export interface GrantWaiter {
  readonly wake: () => void;
  /** Its entry in the line, once it listens. */
  entry?: string;
  leave?: () => void;
  /**
   * Closed ungranted while its LEAVE could not run (the server away): its entry may still be in
   * line, so any message to it (a grant, or the wake-up of a reconnect) runs LEAVE again, which
   * passes on what was granted to it meanwhile (see `closeGrantWaiter`).
   */
  passOn?: () => void;
  /** Unused by direct grant (the core's waiter shape). */
  woken: boolean;
  closed: boolean;
  /** Its owner token: a release that grants it holds under this token. */
  token?: string;
  /**
   * Set by `listenForGrant` until the next attempt: that attempt's owner token (which carries the
   * holder's metadata, see core/holder.ts) replaces the placeholder in the entry before the entry
   * is first sent, so that a grant by a release is stored with it.
   */
  unsent?: { readonly head: string; readonly expire: string };
  /**
   * A grant received (the fencing token, when it was made at the earliest: see `grantOf`), not
   * yet taken by an attempt.
   */
  grant?: { readonly fencingToken: string; readonly at: number };
  /** A pair of clocks from an attempt of this waiter: see `Queued`. */
  queued?: Queued;
}

/**
 * An attempt of a waiter: when it was sent (`now()`) and the server's time when it ran (ms, in
 * its reply). The server ran it after it was sent, so a grant made at server time `t` was made
 * at `sentAt + (t - serverMs)` in this process's clock at the earliest.
 */
export interface Queued {
  readonly sentAt: number;
  readonly serverMs: number;
}

/**
 * A grant's message (`<fencing token>`, or `<fencing token> <server ms>` from a release that
 * dates it, see scripts.ts GRANT_NEXT) that arrived at `arrival`: its fencing token, and when the
 * grant was made at the earliest in this process's clock. The arrival alone says nothing of a
 * message that waited in the socket while this process was frozen (a GC pause, SIGSTOP); the
 * server's time of the grant against the server's time of an attempt (`queued`) does. The
 * earlier of the two: at least as safe as the arrival alone, even after a failover to a server
 * with another clock. An older releaser's 2-field message: the arrival.
 */
export function grantOf(message: string, queued: Queued | undefined, arrival: number) {
  const space = message.indexOf(' ');
  if (space === -1) return { fencingToken: message, at: arrival };
  const fencingToken = message.slice(0, space);
  const grantedMs = Number(message.slice(space + 1));
  if (queued === undefined || !Number.isFinite(grantedMs)) return { fencingToken, at: arrival };
  return { fencingToken, at: Math.min(arrival, queued.sentAt + (grantedMs - queued.serverMs)) };
}

/**
 * Keeps the server's time an attempt sent at `sentAt` replied (the number at `index` of a
 * refusal's reply, when there is one) as the waiter's pair of clocks.
 */
export function noteServerTime(
  waiter: { queued?: Queued } | undefined,
  sentAt: number,
  reply: unknown,
  index: number,
): void {
  const serverMs = Array.isArray(reply) ? (reply as unknown[])[index] : undefined;
  if (waiter !== undefined && typeof serverMs === 'number') waiter.queued = { sentAt, serverMs };
}

export const openGrantWaiter = (wake: () => void): GrantWaiter => ({
  wake,
  woken: false,
  closed: false,
});

const isCluster = (client: object) => client instanceof ioredis().Cluster;

/**
 * Starts listening (once per acquire): subscribes (sharded in a Redis 7 Cluster, in the key's
 * slot) before the next attempt puts the waiter's entry in the line, so that no grant is missed;
 * that attempt follows at once (false). `head(joined)`: the entry up to the owner token;
 * `tail`: the entry after it.
 */
export async function listenForGrant(
  target: LockTarget,
  waiter: GrantWaiter,
  head: (joined: Joined) => string,
  tail: string,
): Promise<boolean> {
  if (waiter.entry !== undefined) return true;
  const client = target.client as unknown as SubscriberSource;
  const cluster = isCluster(client);
  const joined = await WakeChannels.of(client, cluster).join(
    (grant) => {
      if (waiter.closed) {
        waiter.passOn?.();
        return;
      }
      if (grant !== undefined && waiter.grant === undefined) {
        waiter.grant = grantOf(grant, waiter.queued, now());
      }
      waiter.wake();
    },
    cluster ? keySlot(target.key) : undefined,
  );
  if (waiter.closed) {
    joined.leave();
    return true;
  }
  const token = newOwnerToken();
  const start = head(joined);
  waiter.token = token;
  waiter.entry = `${start} ${token} ${tail}`;
  waiter.unsent = { head: start, expire: tail };
  waiter.leave = joined.leave;
  return false;
}

/** How long a waiter closed while its LEAVE could not run keeps listening (`closeGrantWaiter`). */
const ORPHAN_LISTEN_MS = 10 * 60_000;

/**
 * Closes a waiter that was not granted (timed out, aborted, failed): it leaves the line by
 * `leaveLine` (the primitive's LEAVE script), which also gives back, to whoever is next, what a
 * release granted it meanwhile (the message on its way or lost). It stops listening once that
 * ran. If it could not run (the server away), it keeps listening, so that the next message to its
 * entry (a grant, the wake-up of a reconnect) runs it again; not forever: a line outlives its
 * holders by a minute (scripts.ts), so after a while the entry is gone, or reached only by a
 * release that skips it as dead.
 */
export function closeGrantWaiter(
  waiter: GrantWaiter,
  granted: boolean,
  leaveLine: (entry: string, token: string) => Promise<unknown>,
): void {
  waiter.closed = true;
  const { entry, token, leave } = waiter;
  if (granted || entry === undefined || token === undefined) {
    leave?.();
    return;
  }
  let running = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const forget = () => {
    waiter.passOn = undefined;
    if (timer !== undefined) clearTimeout(timer);
    leave?.();
  };
  const passOn = () => {
    if (running) return;
    running = true;
    leaveLine(entry, token).then(forget, () => {
      running = false;
      waiter.passOn = passOn;
      timer ??= setTimeout(forget, ORPHAN_LISTEN_MS).unref();
    });
  };
  passOn();
}

/**
 * A grant the waiter received by message, taken (once) as the attempt's outcome; unless it was
 * made so long ago that the holding's expiry (less the loss margin, core/hold.ts) has passed
 * (this process was frozen while the message waited): then it is dropped, and the attempt's
 * script says whether the waiter still holds (its expiry starts again) or queues it again.
 */
export function takeGrant(
  waiter: Pick<GrantWaiter, 'grant' | 'token'> | undefined,
  target: { readonly expire: number | null },
) {
  const grant = waiter?.grant;
  if (!grant || waiter?.token === undefined) return undefined;
  waiter.grant = undefined;
  const { fencingToken, at } = grant;
  const ttl = target.expire;
  if (ttl !== null && at + ttl - lossMargin(ttl) <= now()) return undefined;
  return { granted: true as const, fencingToken, since: at, ownerToken: waiter.token };
}

/**
 * The entry and owner token an attempt sends: a waiter's entry takes the first attempt's token
 * (which carries the holder's metadata) unless it has whitespace; a newcomer sends no entry.
 */
export function entryFor(waiter: GrantWaiter | undefined, token: string) {
  if (waiter?.unsent && !/\s/u.test(token)) {
    waiter.entry = `${waiter.unsent.head} ${token} ${waiter.unsent.expire}`;
    waiter.token = token;
    waiter.unsent = undefined;
  }
  const entry = waiter?.entry ?? '';
  return { entry, own: entry === '' ? token : (waiter?.token ?? token) };
}

/** The reply of an acquire script: the fencing token, or `{ttl}` / `{ttl, rank}` when refused. */
export function grantOutcome(reply: unknown, own: string, token: string) {
  if (typeof reply === 'string') {
    return own === token
      ? { granted: true as const, fencingToken: reply }
      : { granted: true as const, fencingToken: reply, ownerToken: own };
  }
  const [ttl, rank] = reply as [number, number?];
  return {
    granted: false as const,
    holderTtl: ttl,
    ...(typeof rank === 'number' ? { position: rank } : {}),
  };
}
