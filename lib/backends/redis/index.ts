import type { LockBackend, LockTarget } from '../../core/backend.js';
import { BaseLock, type BaseLockOptions } from '../../core/base-lock.js';
import { parseConnection } from '../../core/connection.js';
import { messages } from '../../core/messages.js';
import { backends } from '../../core/registry.js';
import { now, settleWithin } from '../../core/timing.js';
import {
  ACQUIRE,
  EXTEND,
  FAIL_FAST,
  ioredis,
  LEAVE,
  RELEASE_AND_GRANT,
  type RedisCommands,
} from './scripts.js';
import { redisReadWrite } from './read-write.js';
import { redisSemaphore } from './semaphore.js';
import { redisElection } from './election.js';
import { redisInspection } from './inspect.js';
import { siblingKey } from './slots.js';
import { waitForReplicas, withReplicaAcks } from './replicas.js';
import { FOLLOW_FAILOVER, parseRedisOptions, parseSentinelUrl, SENTINEL_URL } from './sentinel.js';
import {
  closeGrantWaiter,
  entryFor,
  type GrantWaiter,
  listenForGrant,
  listensAlready,
  noteServerTime,
  openGrantWaiter,
} from './direct-grant.js';
import { takeGrant } from '../../core/dated-grant.js';

/** Options of a RedisLock: the lock options and an optional ioredis `Redis` or `Cluster` client. */
export type RedisLockOptions = BaseLockOptions;

/** The library's own keys next to a lock's key, in its cluster slot (see `siblingKey`). */
interface SiblingKeys {
  readonly fencing: string;
  readonly queue: string;
}

const siblings = new WeakMap<LockTarget, SiblingKeys>();

/** The fencing counter and waiter queue keys of `lock` (computed once per lock object). */
function keysOf(lock: LockTarget): SiblingKeys {
  let keys = siblings.get(lock);
  if (!keys) {
    keys = {
      fencing: siblingKey(lock.key, lock.namespace, 'fence'),
      queue: siblingKey(lock.key, lock.namespace, 'queue', `:${lock.key}`),
    };
    siblings.set(lock, keys);
  }
  return keys;
}

/**
 * A lock in Redis: the key `namespace_name` holds the owner token, set with `SET NX PX` so the
 * server expires it after `expire` ms (no TTL when `expire` is null); released by a Lua
 * compare-and-delete that wakes the first waiter in line.
 *
 * @example
 * import { Redis } from 'ioredis';
 * const lock = new RedisLock('invoices', { client: new Redis(process.env.REDIS_URL!), expire: 30_000 });
 * await lock.using(async () => generateInvoices());
 */
export class RedisLock extends BaseLock {
  constructor(name: string, options?: RedisLockOptions) {
    super(name, options);
  }

  /**
   * The key of this lock's fencing counter: one counter per Redis Cluster hash slot (at most
   * 16 384 keys, whatever the number of lock names), in the lock's own slot so that one script
   * can take the lock and count. It holds a control character, which no lock name may contain,
   * so it can never be a lock's key; with a namespace it starts with `namespace_`.
   */
  get fencingKey(): string {
    return keysOf(this).fencing;
  }

  /**
   * The key of this lock's queue of waiters (a sorted set of their wake-up entries, first come
   * first), in the lock's slot; it exists only while someone waits, and expires a minute after
   * its holder's expiry (a holder without expiry: a minute after the last waiter's attempt).
   */
  get queueKey(): string {
    return keysOf(this).queue;
  }
}

const redis = (lock: LockTarget) => lock.client as RedisCommands;

/** A client from a `redis://` URL or ioredis options (the `connection` setting). */
function connectRedis(connection: unknown): RedisCommands {
  const Redis = ioredis().Redis;
  if (connection === undefined) return new Redis({ host: '127.0.0.1', port: 6379, ...FAIL_FAST });
  // Sentinel (docs/sentinel.md): a redis+sentinel:// URL, or `sentinels` + `name` options.
  if (typeof connection === 'string' && SENTINEL_URL.test(connection.trim())) {
    const sentinel = parseSentinelUrl(connection.trim());
    const client = new Redis({ ...FAIL_FAST, ...FOLLOW_FAILOVER, ...sentinel.options });
    return sentinel.waitForReplicas ? waitForReplicas(client, sentinel.waitForReplicas) : client;
  }
  const { servers, options } = parseConnection('redis', connection);
  if (servers.length === 0) {
    const parsed = parseRedisOptions(options);
    const follow = parsed.options['sentinels'] === undefined ? {} : FOLLOW_FAILOVER;
    const client = new Redis({ ...FAIL_FAST, ...follow, ...parsed.options });
    return parsed.waitForReplicas ? waitForReplicas(client, parsed.waitForReplicas) : client;
  }
  const [url] = servers;
  if (servers.length > 1 || typeof connection !== 'string' || url === undefined) {
    throw new TypeError(
      messages.invalidOption('connection', connection, 'a redis:// URL or ioredis options'),
    );
  }
  return new Redis(url, FAIL_FAST);
}

/** Whether a script replied 1 (released, extended). */
const isOne = (reply: unknown): boolean => reply === 1;

/**
 * The fencing token in an acquire script's reply: a string, or an integer (a newcomer's grant,
 * see ACQUIRE); `undefined` when the reply is a refusal.
 */
const fencingOf = (reply: unknown): string | undefined =>
  typeof reply === 'string' ? reply : typeof reply === 'number' ? String(reply) : undefined;

/**
 * How long before its line would expire a waiter renews its place (while the holder has no
 * expiry, see ACQUIRE): room for a missed or failed attempt.
 */
const LINE_MARGIN = 30_000;

/**
 * The reply of an acquire script: the fencing token, or `{ttl}` / `{ttl, rank}` /
 * `{-1, rank, line pttl}` when refused. A waiter's place is kept by the server (the line
 * outlives the holder by a minute; without expiry, until `renewWithin`).
 */
function outcomeOf(reply: unknown) {
  const fencingToken = fencingOf(reply);
  if (fencingToken !== undefined) return { granted: true as const, fencingToken };
  const [ttl, rank, line] = reply as [number, number?, number?];
  if (typeof rank !== 'number') return { granted: false as const, holderTtl: ttl };
  return {
    granted: false as const,
    holderTtl: ttl,
    position: rank,
    keptInLine: true,
    ...(typeof line === 'number' ? { renewWithin: Math.max(0, line - LINE_MARGIN) } : {}),
  };
}

/**
 * The Redis backend. A blocking acquire that finds the lock taken queues up: its next attempt
 * puts its entry (its channel, id, owner token and expiry) in the lock's queue, and a release
 * grants the lock to the first live waiter in line directly: the script sets the key to that
 * waiter's token and publishes the fencing token to it, so that the waiter holds the lock from
 * the message alone. While anyone is in line a newcomer queues: strict first come, first served
 * (see docs/waiting.md).
 */
const redisBackend: LockBackend<RedisCommands, undefined, GrantWaiter> = {
  name: 'redis',
  library: 'ioredis',
  capabilities: {
    fencing: true,
    extend: true,
    handOff: 'push',
    crossProcess: true,
    expiry: { granularity: 1, minimum: 1, maximum: null, earlyBy: 0 },
    semaphore: true,
    readWrite: true,
    election: true,
  },
  clientClass: () => [ioredis().Redis, ioredis().Cluster],
  connect: connectRedis,
  // QUIT (bounded: a client that never connected would wait for ever), then disconnect, which
  // also stops ioredis from reconnecting a client that cannot get in (a wrong password).
  close: async (client) => {
    await settleWithin(client.quit(), 1_000).catch(() => undefined);
    client.disconnect();
  },

  // Not waiting (every uncontended acquire: the core opens no waiter before a refusal), or
  // waiting in line.
  acquire: (lock, token, waiter) =>
    waiter === undefined ? acquireNew(lock, token) : acquireWaiting(lock, token, waiter),
  // As acquireNew: the evalsha sent here, its reply mapped by a `.then` (no `async` level).
  release(lock, token) {
    const { fencing, queue } = keysOf(lock);
    const client = redis(lock);
    return client
      .evalsha(RELEASE_AND_GRANT.sha, 3, lock.key, fencing, queue, token)
      .then(isOne, (err: unknown) => releaseByScript(err, lock, token));
  },
  async extend(lock, token, ttl) {
    return (await EXTEND.run(redis(lock), [lock.key], [token, String(Math.ceil(ttl))])) === 1;
  },
  async locked(lock) {
    return (await redis(lock).exists(lock.key)) === 1;
  },
  async ping(client) {
    await (client as unknown as { ping(): Promise<unknown> }).ping();
  },
  handOff: {
    open: (_lock, wake) => openGrantWaiter(wake),
    // An attempt with a waiter that has not listened yet is a newcomer's attempt (see acquire).
    openAfterRefusal: true,
    // Unless the client's wake channel is subscribed already (contention lately): then the first
    // attempt carries the waiter's entry, and a refusal is a place in line.
    listensAlready,
    // Its entry: `<mode> <channel> <id> <owner token> <expire or ->` (see scripts.ts).
    listen: (lock, waiter) =>
      listenForGrant(
        lock,
        waiter,
        (joined) => `${joined.mode} ${joined.channel} ${joined.id}`,
        lock.expire === null ? '-' : String(Math.ceil(lock.expire)),
      ),
    // Not granted (timed out, aborted, failed): leave the line, and give back (to the next in
    // line) the lock if a release granted it meanwhile, the message being on its way or lost.
    close(lock, waiter, granted) {
      const { fencing, queue } = keysOf(lock);
      closeGrantWaiter(waiter, granted, (entry, token) =>
        LEAVE.run(redis(lock), [lock.key, fencing, queue], [entry, token]),
      );
    },
    // A grant's message, taken by the waiting acquire as it arrives (no attempt, no round trip).
    takeGrant: (lock, waiter) => takeGrant(waiter, lock),
  },

  // A semaphore: one Lua script per operation, direct grant in order of arrival (semaphore.ts).
  semaphore: redisSemaphore,

  // A read-write lock: one Lua script per operation, writers first (read-write.ts).
  readWrite: redisReadWrite,
  // inspect / list / forceRelease (inspect.ts): force-release goes through release() above.
  inspection: redisInspection(
    (lock) => keysOf(lock).queue,
    (lock, owner) => redisBackend.release(lock as LockTarget<RedisCommands>, owner, undefined),
  ),
  // Leader election: the election's lock, and what its holder published in a hash next to it.
  election: redisElection,
};

/**
 * A newcomer's attempt (no waiter: the uncontended path): the acquire script with no entry.
 * The `evalsha` is sent here, not through `ACQUIRE.run` (no arrays), and its reply mapped by a
 * `.then` with a module-level function (no `async` level of its own, no closure when it works).
 */
function acquireNew(lock: LockTarget<RedisCommands>, token: string): Promise<NewcomerOutcome> {
  const { fencing, queue } = keysOf(lock);
  const expire = lock.expire === null ? '' : String(Math.ceil(lock.expire));
  const client = redis(lock);
  return client
    .evalsha(ACQUIRE.sha, 3, lock.key, fencing, queue, token, expire, '')
    .then(newcomerOutcome, (err: unknown) => acquireByScript(err, lock, token));
}

/** acquireNew's evalsha failed: sends the script itself if the server did not know it. */
function acquireByScript(err: unknown, lock: LockTarget<RedisCommands>, token: string) {
  const { fencing, queue } = keysOf(lock);
  const expire = lock.expire === null ? '' : String(Math.ceil(lock.expire));
  return ACQUIRE.unlessUnknown(
    err,
    redis(lock),
    [lock.key, fencing, queue],
    [token, expire, ''],
  ).then(newcomerOutcome);
}

type NewcomerOutcome = ReturnType<typeof outcomeOf> | { granted: true; fencingToken: string };

/** release's evalsha failed: sends the script itself if the server did not know it. */
function releaseByScript(err: unknown, lock: LockTarget<RedisCommands>, token: string) {
  const { fencing, queue } = keysOf(lock);
  const keys = [lock.key, fencing, queue];
  return RELEASE_AND_GRANT.unlessUnknown(err, redis(lock), keys, [token]).then(isOne);
}

/** A newcomer's acquire script reply: granted with its fencing token, or refused. */
function newcomerOutcome(reply: unknown): NewcomerOutcome {
  const fencingToken = fencingOf(reply);
  if (fencingToken !== undefined) return { granted: true as const, fencingToken };
  return outcomeOf(reply);
}

/** A waiter's attempt: granted by a release's message, or the acquire script with its entry. */
async function acquireWaiting(lock: LockTarget<RedisCommands>, token: string, waiter: GrantWaiter) {
  // Granted by a release: the message is the answer, no round trip (unless the grant expired
  // while this process was frozen: then the script below).
  const granted = takeGrant(waiter, lock);
  if (granted) return granted;
  const { fencing, queue } = keysOf(lock);
  const expire = lock.expire === null ? '' : String(Math.ceil(lock.expire));
  const { entry, own } = entryFor(waiter, token);
  const sentAt = now();
  const reply = await ACQUIRE.run(redis(lock), [lock.key, fencing, queue], [own, expire, entry]);
  // An attempt that queued the waiter replies the server's time too: see `grantOf`.
  noteServerTime(waiter, sentAt, reply, 3);
  const fencingToken = fencingOf(reply);
  if (fencingToken !== undefined) {
    return own === token
      ? { granted: true as const, fencingToken }
      : { granted: true as const, fencingToken, ownerToken: own };
  }
  return outcomeOf(reply);
}

// waitForReplicas (replicas.ts): WAIT after the writes that grant, on clients that ask for it.
export const REDIS = backends.register({ ...withReplicaAcks(redisBackend), lockClass: RedisLock });
