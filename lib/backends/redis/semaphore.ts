import type { HandOff, SemaphoreBackend, SemaphoreTarget } from '../../core/backend.js';
import {
  entryFor,
  closeGrantWaiter,
  type GrantWaiter,
  grantOutcome,
  listenForGrant,
  listensAlready,
  openGrantWaiter,
  noteServerTime,
} from './direct-grant.js';
import { takeGrant } from '../../core/dated-grant.js';
import { now } from '../../core/timing.js';
import type { RedisCommands } from './scripts.js';
import {
  ACQUIRE_PERMIT,
  COUNT_PERMITS,
  EXTEND_PERMIT,
  LEAVE_PERMITS,
  RELEASE_PERMIT,
} from './semaphore-scripts.js';
import { siblingKey } from './slots.js';

/** A semaphore's keys, in its key's slot: never a lock's, even for the same name. */
interface PermitKeys {
  readonly permits: string;
  readonly fencing: string;
  readonly line: string;
  /** The semaphore's limit, as its scripts take it. */
  readonly limit: string;
}

const keyCache = new WeakMap<SemaphoreTarget, PermitKeys>();

function keysOf(sem: SemaphoreTarget): PermitKeys {
  let keys = keyCache.get(sem);
  if (!keys) {
    keys = {
      permits: siblingKey(sem.key, sem.namespace, 'sem', `:${sem.key}`),
      fencing: siblingKey(sem.key, sem.namespace, 'fence'),
      line: siblingKey(sem.key, sem.namespace, 'semq', `:${sem.key}`),
      limit: String(sem.limit),
    };
    keyCache.set(sem, keys);
  }
  return keys;
}

const redis = (sem: SemaphoreTarget) => sem.client as RedisCommands;
const expireOf = (sem: SemaphoreTarget) =>
  sem.expire === null ? '' : String(Math.ceil(sem.expire));

const handOff: HandOff<RedisCommands, GrantWaiter, SemaphoreTarget<RedisCommands>> = {
  open: (_sem, wake) => openGrantWaiter(wake),
  // An attempt with a waiter that has not listened yet is a newcomer's (no entry, see acquire):
  // an uncontended acquire makes no waiter (the lock's uncontended path, base-lock.ts).
  openAfterRefusal: true,
  // Unless the client's wake channel is subscribed already: then the first attempt carries the
  // waiter's entry, and a refusal is a place in line.
  listensAlready,
  // Its entry: `<mode> <channel> <id> <owner token> <expire or -> <limit>`.
  listen: (sem, waiter) =>
    listenForGrant(
      sem,
      waiter,
      (joined) => `${joined.mode} ${joined.channel} ${joined.id}`,
      `${expireOf(sem) || '-'} ${sem.limit}`,
    ),
  // Not granted (timed out, aborted, failed): leave the line, and give back (to the next in
  // line) a permit a release granted meanwhile, the message being on its way or lost.
  close(sem, waiter, granted) {
    const { permits, fencing, line } = keysOf(sem);
    closeGrantWaiter(waiter, granted, (entry, token) =>
      LEAVE_PERMITS.run(redis(sem), [permits, fencing, line], [entry, token]),
    );
  },
  // A grant's message, taken by the waiting acquire as it arrives (no attempt, no round trip).
  takeGrant: (sem, waiter) => takeGrant(waiter, sem),
};

/**
 * The Redis semaphore, strict first come, first served: one Lua script per operation
 * (semaphore-scripts.ts) over a sorted set of permits scored by expiry on the server's clock, its
 * fencing counter and line of waiters in the same cluster slot. A release (or a waiter leaving,
 * or an attempt finding expired permits) gives each free permit to the next waiter in line
 * directly and tells it over pub/sub with its fencing token; while anyone is in line, a newcomer
 * queues behind them.
 */
export const redisSemaphore: SemaphoreBackend<RedisCommands, undefined, GrantWaiter> = {
  // Not waiting (every uncontended acquire: the core opens no waiter before a refusal), or
  // waiting in line.
  acquire: (sem, token, waiter) =>
    waiter === undefined ? acquireNew(sem, token) : acquireWaiting(sem, token, waiter),
  // As acquireNew: the evalsha sent here, its reply mapped by a `.then` (no `async` level).
  release(sem, token) {
    const { permits, fencing, line } = keysOf(sem);
    return redis(sem)
      .evalsha(RELEASE_PERMIT.sha, 3, permits, fencing, line, token)
      .then(isOne, (err: unknown) =>
        RELEASE_PERMIT.unlessUnknown(err, redis(sem), [permits, fencing, line], [token]).then(
          isOne,
        ),
      );
  },
  async extend(sem, token, ttl) {
    const args = [token, String(Math.ceil(ttl))];
    return (await EXTEND_PERMIT.run(redis(sem), [keysOf(sem).permits], args)) === 1;
  },
  async count(sem) {
    return Number(await COUNT_PERMITS.run(redis(sem), [keysOf(sem).permits], []));
  },
  handOff,
};

const isOne = (reply: unknown): boolean => reply === 1;

/**
 * A newcomer's attempt (no waiter: the uncontended path), as the lock's (index.ts, acquireNew):
 * the `evalsha` sent here with no entry, its reply mapped by a module-level function.
 */
function acquireNew(sem: SemaphoreTarget, token: string) {
  const { permits, fencing, line, limit } = keysOf(sem);
  const expire = expireOf(sem);
  return redis(sem)
    .evalsha(ACQUIRE_PERMIT.sha, 3, permits, fencing, line, token, expire, limit, '')
    .then(newcomerOutcome, (err: unknown) =>
      ACQUIRE_PERMIT.unlessUnknown(
        err,
        redis(sem),
        [permits, fencing, line],
        [token, expire, limit, ''],
      ).then(newcomerOutcome),
    );
}

/** A newcomer's reply: its fencing token, or `{ttl}` of the first permit to expire. */
function newcomerOutcome(reply: unknown) {
  if (typeof reply === 'string') return { granted: true as const, fencingToken: reply };
  return { granted: false as const, holderTtl: (reply as [number])[0] };
}

/** A waiter's attempt: granted by a release's message, or the acquire script with its entry. */
async function acquireWaiting(sem: SemaphoreTarget, token: string, waiter: GrantWaiter) {
  const granted = takeGrant(waiter, sem); // granted by a release: no round trip
  if (granted) return granted;
  const { permits, fencing, line, limit } = keysOf(sem);
  const { entry, own } = entryFor(waiter, token);
  const sentAt = now();
  const reply = await ACQUIRE_PERMIT.run(
    redis(sem),
    [permits, fencing, line],
    [own, expireOf(sem), limit, entry],
  );
  // A waiter's refusal carries the server's time: it dates a grant's message (grantOf).
  noteServerTime(waiter, sentAt, reply, 2);
  return grantOutcome(reply, own, token);
}
