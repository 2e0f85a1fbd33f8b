import {
  type AcquireResult,
  BaseLock,
  type BaseLockOptions,
  type ReleaseWaiter,
} from '../core/base-lock.js';
import { now, settleWithin } from '../core/timing.js';
import { joinQueue, type QueuedWaiter, type SubscriberSource } from './redis-releases.js';
import { messages } from '../core/messages.js';
import { checkConnection } from '../core/options.js';
import { backends } from '../core/registry.js';
import {
  ACQUIRE,
  EXTEND,
  FAIL_FAST,
  ioredis,
  LEAVE,
  RELEASE_AND_WAKE,
  type RedisCommands,
} from './redis-commands.js';
import { siblingKey } from './redis-slots.js';

/** Options of a RedisLock: the lock options and an optional ioredis `Redis` or `Cluster` client. */
export type RedisLockOptions = BaseLockOptions;

/**
 * A lock in Redis: the key `namespace_name` holds the owner token, set with `SET NX PX` so the
 * server expires it after `expire` ms (no TTL when `expire` is null); released by a Lua
 * compare-and-delete.
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

  private get redis(): RedisCommands {
    return this.client as RedisCommands;
  }

  /**
   * The key of this lock's fencing counter: one counter per Redis Cluster hash slot (at most
   * 16 384 keys, whatever the number of lock names), in the lock's own slot so that one script
   * can take the lock and count. It holds a control character, which no lock name may contain,
   * so it can never be a lock's key; with a namespace it starts with `namespace_`.
   */
  readonly fencingKey = siblingKey(this.key, this.namespace, 'fence');

  /**
   * The key of this lock's queue of waiters (a sorted set of their wake-up entries, first come
   * first), in the lock's slot; it exists only while someone waits, and expires a minute after
   * the last waiter's attempt.
   */
  readonly queueKey = siblingKey(this.key, this.namespace, 'queue', `:${this.key}`);

  /** The waiter of the blocking acquire in progress, if it is queued. */
  private queued: QueuedWaiter | undefined;
  private holderTtl = -1;
  private holderTtlAt = 0;

  protected async _acquire(token: string): Promise<AcquireResult> {
    const expire = this.expire === null ? '' : String(Math.ceil(this.expire));
    const queued = this.queued;
    const reply = await ACQUIRE.run(
      this.redis,
      [this.key, this.fencingKey, this.queueKey],
      [token, expire, queued?.entry ?? '', queued?.takeWoken() ? '1' : ''],
    );
    if (typeof reply === 'string') return { fencingToken: reply };
    const [ttl, rank] = reply as [number, number?];
    this.holderTtl = ttl;
    this.holderTtlAt = now();
    if (queued && typeof rank === 'number') queued.rank = rank;
    return false;
  }

  /**
   * A blocking acquire that found the lock taken queues up: its next attempt puts its wake-up
   * entry in the lock's queue, and a release wakes the first waiter in line only. It also wakes
   * when the holder's lock expires, and polls in case a wake-up was lost: every 2 s when first in
   * line, less often further back. Another client may still take the lock between the release
   * and the woken waiter's attempt (Redis locks are not strictly fair); the waiter then queues
   * again at the front.
   */
  protected override async openWaiter(): Promise<ReleaseWaiter> {
    const waiter = await joinQueue(this.client as SubscriberSource, () =>
      this.holderTtl < 0 ? -1 : Math.max(0, this.holderTtl - (now() - this.holderTtlAt)),
    );
    this.queued = waiter;
    return {
      wait: (remaining, signal) => waiter.wait(remaining, signal),
      close: () => {
        if (this.queued === waiter) this.queued = undefined;
        waiter.close();
        // Not granted (timed out, aborted, failed): leave the line, passing on a wake-up.
        if (!this.isAcquired) {
          LEAVE.run(this.redis, [this.key, this.queueKey], [waiter.entry]).catch(() => undefined);
        }
      },
    };
  }

  protected override async _extend(token: string, ttl: number): Promise<boolean> {
    return (await EXTEND.run(this.redis, [this.key], [token, String(Math.ceil(ttl))])) === 1;
  }

  protected async _release(token: string): Promise<boolean> {
    return (await RELEASE_AND_WAKE.run(this.redis, [this.key, this.queueKey], [token])) === 1;
  }

  protected async _locked(): Promise<boolean> {
    return (await this.redis.exists(this.key)) === 1;
  }
}

/** A client from a `redis://` URL or ioredis options (the module's `connection` setting). */
function connectRedis(connection: unknown): RedisCommands {
  if (connection === undefined)
    return new (ioredis().Redis)({ host: '127.0.0.1', port: 6379, ...FAIL_FAST });
  const settings = checkConnection('redis', connection);
  if (typeof settings === 'string') return new (ioredis().Redis)(settings, FAIL_FAST);
  if (Array.isArray(settings)) {
    throw new TypeError(
      messages.invalidOption('connection', connection, 'a redis:// URL or ioredis options'),
    );
  }
  return new (ioredis().Redis)({ ...FAIL_FAST, ...settings });
}

export const REDIS = backends.register({
  name: 'redis',
  lockClass: RedisLock,
  library: 'ioredis',
  loadClientClass: () => [ioredis().Redis, ioredis().Cluster],
  createClient: () => connectRedis(undefined),
  connect: connectRedis,
  // QUIT (bounded: a client that never connected would wait for ever), then disconnect, which
  // also stops ioredis from reconnecting a client that cannot get in (a wrong password).
  closeClient: async (client) => {
    const redis = client as RedisCommands;
    await settleWithin(redis.quit(), 1_000).catch(() => undefined);
    redis.disconnect();
  },
});
