import type { LockTarget } from '../../core/backend.js';
import {
  type DatedGrant,
  grantOf,
  noteServerTime as noteServerTimeOf,
  type Queued,
} from '../../core/dated-grant.js';
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
  grant?: DatedGrant;
  /** A pair of clocks from an attempt of this waiter (core/dated-grant.ts `Queued`). */
  queued?: Queued;
}

/**
 * Keeps the server's time an attempt sent at `sentAt` replied (the number at `index` of a
 * refusal's reply, when there is one) as the waiter's pair of clocks (core/dated-grant.ts).
 */
export function noteServerTime(
  waiter: { queued?: Queued } | undefined,
  sentAt: number,
  reply: unknown,
  index: number,
): void {
  if (Array.isArray(reply)) noteServerTimeOf(waiter, sentAt, (reply as unknown[])[index]);
}

/**
 * Whether a waiter on `target`'s client would listen at once (its wake channel is subscribed
 * already, plain pub/sub): the core then listens before the first attempt, which puts the waiter
 * in line if refused (`HandOff.listensAlready`).
 */
export const listensAlready = (target: { readonly client: object }): boolean =>
  WakeChannels.ready(target.client);

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
    let leaving: Promise<unknown>;
    try {
      leaving = leaveLine(entry, token);
    } catch {
      // Thrown, not rejected: the lock can no longer reach its server (its manager was closed).
      forget();
      return;
    }
    running = true;
    leaving.then(forget, () => {
      running = false;
      waiter.passOn = passOn;
      timer ??= setTimeout(forget, ORPHAN_LISTEN_MS).unref();
    });
  };
  passOn();
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
