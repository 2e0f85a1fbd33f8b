import type { LockTarget } from '../../core/backend.js';
import { newOwnerToken, now } from '../../core/timing.js';
import { ioredis } from './scripts.js';
import { keySlot } from './slots.js';
import { type Joined, type SubscriberSource, WakeChannels } from './wake-channels.js';

/**
 * The waiter of a blocking acquire on a Redis primitive served by direct grant (the read-write
 * lock, the semaphore; a lock's is the same shape, index.ts): once it listens, its entry
 * `<prefix><owner token> <suffix>` is in the line, and a release may grant it by a message alone.
 */
export interface GrantWaiter {
  readonly wake: () => void;
  /** Its entry in the line, once it listens. */
  entry?: string;
  leave?: () => void;
  /** Unused here (the lock waiter's shape, which the Redis backend's type shares). */
  woken: boolean;
  closed: boolean;
  /** Its owner token: a release that grants it holds under this token. */
  token?: string;
  /** Until the entry's first trip: the attempt's token replaces the placeholder (as a lock's). */
  unsent?: { readonly head: string; readonly expire: string };
  /** A grant received (the fencing token, when it arrived), not yet taken by an attempt. */
  grant?: { readonly fencingToken: string; readonly at: number };
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
      if (grant !== undefined && !waiter.closed && waiter.grant === undefined) {
        waiter.grant = { fencingToken: grant, at: now() };
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

/** A grant the waiter received by message, taken (once) as the attempt's outcome. */
export function takeGrant(waiter: GrantWaiter | undefined) {
  const grant = waiter?.grant;
  if (!grant || waiter?.token === undefined) return undefined;
  waiter.grant = undefined;
  const { fencingToken, at } = grant;
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
