import {
  type AcquireResult,
  BaseLock,
  type BaseLockOptions,
  type ReleaseWaiter,
} from '../core/base-lock.js';
import { now } from '../core/timing.js';
import { type SubscriberSource, waitForRelease } from './redis-releases.js';
import { messages } from '../core/messages.js';
import { checkConnection } from '../core/options.js';
import { backends } from '../core/registry.js';
import {
  ACQUIRE,
  EXTEND,
  FAIL_FAST,
  ioredis,
  RELEASE,
  type RedisCommands,
} from './redis-commands.js';
import { keySlot, tagForSlot } from './redis-slots.js';

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
  readonly fencingKey = fencingKeyFor(this.key, this.namespace);

  protected async _acquire(token: string): Promise<AcquireResult> {
    const expire = this.expire === null ? '' : String(Math.ceil(this.expire));
    const reply = await ACQUIRE.run(this.redis, [this.key, this.fencingKey], [token, expire]);
    if (typeof reply === 'string') return { fencingToken: reply };
    this.holderTtl = typeof reply === 'number' ? reply : -1;
    this.holderTtlAt = now();
    return false;
  }

  /** The channel the release script announces this lock's releases on. */
  readonly releaseChannel = `sherlock:release:${this.key}`;
  private holderTtl = -1;
  private holderTtlAt = 0;

  /**
   * Waiters are woken by the release message (one shared subscriber connection per client),
   * or when the holder's lock expires, with a poll every 2 s for a missed message.
   */
  protected override async openWaiter(): Promise<ReleaseWaiter> {
    return waitForRelease(this.client as SubscriberSource, this.releaseChannel, () =>
      this.holderTtl < 0 ? -1 : Math.max(0, this.holderTtl - (now() - this.holderTtlAt)),
    );
  }

  protected override async _extend(token: string, ttl: number): Promise<boolean> {
    return (await EXTEND.run(this.redis, [this.key], [token, String(Math.ceil(ttl))])) === 1;
  }

  protected async _release(token: string): Promise<boolean> {
    return (await RELEASE.run(this.redis, [this.key], [token, this.releaseChannel])) === 1;
  }

  protected async _locked(): Promise<boolean> {
    return (await this.redis.exists(this.key)) === 1;
  }
}

function fencingKeyFor(key: string, namespace: string | null): string {
  const slot = keySlot(key);
  const counter = `\u001ffence:{${tagForSlot(slot)}}`;
  const prefixed = namespace === null ? counter : `${namespace}_${counter}`;
  // A namespace with braces of its own could move the counter to another slot: then go without.
  return keySlot(prefixed) === slot ? prefixed : counter;
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
  closeClient: async (client) => {
    await (client as RedisCommands).quit().catch(() => undefined);
  },
});
