import { createHash } from 'node:crypto';
import { loadDriver } from '../core/driver.js';
import type { ClientClass } from '../core/registry.js';

/**
 * What the Redis backends (RedisLock, RedlockLock) send to Redis: the ioredis surface they call,
 * and their Lua scripts. User text only ever travels as KEYS and ARGV, never inside a script.
 */

/** The part of an ioredis client (`Redis` or `Cluster`) this backend calls. */
export interface RedisCommands {
  evalsha(sha: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  exists(key: string): Promise<number>;
  quit(): Promise<unknown>;
}

export interface IoredisModule {
  Redis: ClientClass &
    (new (
      ...args: [options: Record<string, unknown>] | [url: string, options: Record<string, unknown>]
    ) => RedisCommands);
  Cluster: ClientClass;
}

/** A Lua script, sent by SHA and loaded on the first NOSCRIPT. User text is only ever an ARGV/KEYS. */
export class Script {
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
export const ACQUIRE = new Script(`
local taken
if ARGV[2] == '' then
  taken = redis.call('set', KEYS[1], ARGV[1], 'NX')
else
  taken = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
end
if not taken then return redis.call('pttl', KEYS[1]) end
return tostring(redis.call('incr', KEYS[2]))`);

export const EXTEND = new Script(`
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0`);

/** Compare-and-delete, then announce the release to waiters. ARGV: token, channel. */
export const RELEASE = new Script(`
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  redis.call('publish', ARGV[2], '1')
  return 1
end
return 0`);

export const ioredis = () => loadDriver<IoredisModule>('redis', 'ioredis');

// Fail commands fast while the server is down instead of queueing them for long.
export const FAIL_FAST = { maxRetriesPerRequest: 1 };
