import { createHash } from 'node:crypto';
import {
  type AcquireResult,
  BaseLock,
  type BaseLockOptions,
  type ReleaseWaiter,
} from '../core/base-lock.js';
import { now } from '../core/timing.js';
import { type SubscriberSource, waitForRelease } from './redis-releases.js';
import { loadDriver } from '../core/driver.js';
import { messages } from '../core/messages.js';
import { checkConnection } from '../core/options.js';
import { backends, type ClientClass } from '../core/registry.js';
import { keySlot, tagForSlot } from './redis-slots.js';

/** The part of an ioredis client (`Redis` or `Cluster`) this backend calls. */
interface RedisCommands {
  evalsha(sha: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  exists(key: string): Promise<number>;
  quit(): Promise<unknown>;
}

interface IoredisModule {
  Redis: ClientClass &
    (new (
      ...args: [options: Record<string, unknown>] | [url: string, options: Record<string, unknown>]
    ) => RedisCommands);
  Cluster: ClientClass;
}

/** A Lua script, sent by SHA and loaded on the first NOSCRIPT. User text is only ever an ARGV/KEYS. */
class Script {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  async run(client: RedisCommands, keys: string[], args: string[]): Promise<unknown> {
    try {
      return await client.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!String((err as Error | undefined)?.message).startsWith('NOSCRIPT')) throw err;
      return client.eval(this.source, keys.length, ...keys, ...args);
    }
  }
}

/**
 * SET NX (with PX unless ARGV[2] is empty) and, if it took the lock, INCR the fencing counter.
 * KEYS: lock, counter. ARGV: token, expire in ms or ''. Returns the counter as a string, or the
 * holder's remaining time to live in ms (a number; -1 without expiry) when the lock is taken.
 */
const ACQUIRE = new Script(`
local taken
if ARGV[2] == '' then
  taken = redis.call('set', KEYS[1], ARGV[1], 'NX')
else
  taken = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
end
if not taken then return redis.call('pttl', KEYS[1]) end
return tostring(redis.call('incr', KEYS[2]))`);

const EXTEND = new Script(`
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0`);

/** Compare-and-delete, then announce the release to waiters. ARGV: token, channel. */
const RELEASE = new Script(`
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  redis.call('publish', ARGV[2], '1')
  return 1
end
return 0`);

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

const ioredis = () => loadDriver<IoredisModule>('redis', 'ioredis');

// Fail commands fast while the server is down instead of queueing them for long.
const FAIL_FAST = { maxRetriesPerRequest: 1 };

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
