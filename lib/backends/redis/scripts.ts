import { createHash } from 'node:crypto';
import type { ClientClass } from '../../core/backend.js';
import { loadDriver } from '../../core/driver.js';

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
  disconnect(): void;
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
 * Wakes the first live waiter in the queue KEYS[2] (a sorted set of entries `<channel> <id>`,
 * first come first): pops it and publishes its id on its channel. A channel nobody listens on any
 * more (its process died) is dropped and the next one tried, up to 5, so a dead waiter cannot
 * stall the line. In a
 * Redis Cluster PUBLISH counts only the listeners on this node, so there a release may wake up to
 * 5 waiters: each tries once, and those that fail queue up again at the front.
 */
const WAKE_NEXT = `
for _ = 1, 5 do
  local head = redis.call('zpopmin', KEYS[2])
  if head[1] == nil then break end
  local channel, id = string.match(head[1], '^(%S+) (%S+)$')
  -- pcall: a user the ACL does not let publish there still releases (the waiter will poll).
  local sent = channel and redis.pcall('publish', channel, id)
  if type(sent) ~= 'number' or sent > 0 then break end
end`;

/**
 * SET NX (with PX unless ARGV[2] is empty) and, if it took the lock, INCR the fencing counter;
 * a counter that does not exist (first use, or lost: a restart without persistence, FLUSHALL, an
 * eviction) starts from the server's clock in microseconds, so it stays above the tokens it gave
 * before unless the server's clock went back or more than a million locks a second were taken.
 * KEYS: lock, counter, queue. ARGV: token, expire in ms or '', the waiter's entry or '' (not
 * waiting yet), '1' to queue at the front (a waiter that was woken and lost the race) or ''.
 * Returns the counter as a string; or, when the lock is taken, `{pttl}` (-1 without expiry) and,
 * for a waiter, its place in the queue: `{pttl, rank}`. A waiter keeps its place across attempts;
 * the queue expires a minute after the last waiter's attempt.
 */
export const ACQUIRE = new Script(`
local taken
if ARGV[2] == '' then
  taken = redis.call('set', KEYS[1], ARGV[1], 'NX')
else
  taken = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
end
if taken then
  if ARGV[3] ~= '' then redis.call('zrem', KEYS[3], ARGV[3]) end
  local n = redis.call('incr', KEYS[2])
  if n == 1 then
    local t = redis.call('time')
    n = redis.call('incrby', KEYS[2], t[1] .. string.format('%06d', tonumber(t[2])))
  end
  return string.format('%d', n)
end
local ttl = redis.call('pttl', KEYS[1])
if ARGV[3] == '' then return {ttl} end
if ARGV[4] == '1' then
  local head = redis.call('zrange', KEYS[3], 0, 0, 'WITHSCORES')
  local t = redis.call('time')
  local score = head[2] and (tonumber(head[2]) - 1) or (t[1] * 1000000 + t[2])
  redis.call('zadd', KEYS[3], score, ARGV[3])
else
  local t = redis.call('time')
  redis.call('zadd', KEYS[3], 'NX', t[1] * 1000000 + t[2], ARGV[3])
end
redis.call('pexpire', KEYS[3], 60000)
return {ttl, redis.call('zrank', KEYS[3], ARGV[3])}`);

export const EXTEND = new Script(`
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0`);

/** Compare-and-delete. KEYS: lock. ARGV: token. */
export const RELEASE = new Script(`
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
  return 1
end
return 0`);

/** Compare-and-delete, then wake the first waiter. KEYS: lock, queue. ARGV: token. */
export const RELEASE_AND_WAKE = new Script(`
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('del', KEYS[1])
${WAKE_NEXT}
return 1`);

/**
 * A waiter gives up (timeout, abort): it leaves the queue, and if the lock is free (a release may
 * have woken it just before it left), wakes the next one in its place. KEYS: lock, queue.
 * ARGV: the waiter's entry.
 */
export const LEAVE = new Script(`
redis.call('zrem', KEYS[2], ARGV[1])
if redis.call('exists', KEYS[1]) == 0 then
${WAKE_NEXT}
end
return 1`);

export const ioredis = () => loadDriver<IoredisModule>('redis', 'ioredis');

// Fail commands fast while the server is down instead of queueing them for long.
export const FAIL_FAST = { maxRetriesPerRequest: 1 };
