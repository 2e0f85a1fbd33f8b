import { createHash } from 'node:crypto';
import { BaseLock, type BaseLockOptions } from '../core/base-lock.js';
import { loadDriver } from '../core/driver.js';
import { messages } from '../core/messages.js';
import { checkConnection } from '../core/options.js';
import { backends, type ClientClass } from '../core/registry.js';

/** The part of an ioredis client (`Redis` or `Cluster`) this backend calls. */
interface RedisCommands {
  set(key: string, value: string, ...args: (string | number)[]): Promise<string | null>;
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

const RELEASE = new Script(`
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
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

  protected async _acquire(token: string): Promise<boolean> {
    const reply =
      this.expire === null
        ? await this.redis.set(this.key, token, 'NX')
        : await this.redis.set(this.key, token, 'PX', Math.ceil(this.expire), 'NX');
    return reply === 'OK';
  }

  protected async _release(token: string): Promise<boolean> {
    return (await RELEASE.run(this.redis, [this.key], [token])) === 1;
  }

  protected async _locked(): Promise<boolean> {
    return (await this.redis.exists(this.key)) === 1;
  }
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
