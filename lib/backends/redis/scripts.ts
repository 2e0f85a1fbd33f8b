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
      return this.unlessUnknown(err, client, keys, args);
    }
  }

  /**
   * After an `evalsha` of this script failed with `err`: runs it by its source if the server did
   * not know it (NOSCRIPT: the server loads it), else rethrows `err`. For the hot paths that
   * send the `evalsha` themselves (no arrays built, one async level less than `run`).
   */
  async unlessUnknown(
    err: unknown,
    client: RedisCommands,
    keys: string[],
    args: string[],
  ): Promise<unknown> {
    if (!String((err as Error | undefined)?.message).startsWith('NOSCRIPT')) throw err;
    return client.eval(this.source, keys.length, ...keys, ...args);
  }
}

/**
 * Lua statements that increment the fencing counter `counter` (a KEYS[i]) into the local `n`. A
 * counter that does not exist (first use, or lost: a restart without persistence, FLUSHALL, an
 * eviction) starts from the server's clock in microseconds, so it stays above the tokens it gave
 * before unless the server's clock went back or more than a million locks a second were taken.
 */
export const count = (counter: string) => `
local n = redis.call('incr', ${counter})
if n == 1 then
  local t = redis.call('time')
  n = redis.call('incrby', ${counter}, t[1] .. string.format('%06d', tonumber(t[2])))
end`;

/**
 * The Lua function `fence()`: the fencing counter `counter` incremented (see `count`), as a
 * decimal string. Shared by the lock's, the read-write lock's and the semaphore's scripts.
 */
export const fenceFunction = (counter: string) => `
local function fence()
  ${count(counter)}
  return string.format('%d', n)
end`;

/**
 * The Lua function `wake_next()`, for a grant loop that used up its budget on dead waiters while
 * its line `line` (a KEYS[i]) is still not empty: wakes (does not grant) the next waiter, with
 * the plain wake-up message `<id>` on its channel; its attempt moves the line on (its own grant
 * loop). Up to 100 entries, first first: a dead one (reply 0, mode `p`/`s`) leaves the line, and
 * the first received (or mode `b`, or a refused PUBLISH) ends it. `entry`: a Lua pattern whose
 * captures are an entry's mode, channel and id. Shared by the lock's, the read-write lock's and
 * the semaphore's scripts.
 */
export const wakeFunction = (line: string, entry: string) => `
local function wake_next()
  for _, each in ipairs(redis.call('zrange', ${line}, 0, 99)) do
    local mode, channel, id = string.match(each, '${entry}')
    if mode then
      local sent
      if mode == 's' then
        sent = redis.pcall('spublish', channel, id)
      else
        sent = redis.pcall('publish', channel, id)
      end
      if type(sent) ~= 'number' or sent > 0 or mode == 'b' then return end
    end
    redis.call('zrem', ${line}, each)
  end
end`;

const COUNT = count('KEYS[2]');
const FENCE = fenceFunction('KEYS[2]');

/**
 * Direct grant (strict FIFO). The queue KEYS[3] is a sorted set of waiter entries, first come
 * first: `<mode> <channel> <id> <token> <expire in ms or ->`. `grant_next(self)` gives a free
 * lock KEYS[1] to the first waiter in line: sets the key to that waiter's token with its expiry,
 * issues the fencing token, and publishes `<id> <fencing token>` on its channel (a waiter whose id ends
 * with `.` gets `<id> <fencing token> <server ms>`: the server's time of the grant, see
 * wake-channels.ts); the waiter holds the lock from that message alone. Modes: `p` plain PUBLISH on one server and `s` SPUBLISH
 * (Redis 7 sharded pub/sub, in a Cluster: the channel is in the lock's slot), whose replies count
 * exactly who received the message: 0 means the waiter's process is gone, so the grant is taken
 * back and the next waiter tried (up to 10 a call; then `wake_next` wakes the next live one,
 * whose attempt goes on). `b`: plain PUBLISH in a Redis Cluster without sharded pub/sub, whose
 * reply counts one node only: the grant stands (a dead waiter costs the line its expiry). A
 * PUBLISH the ACL refuses also leaves the grant standing: the waiter finds it by its fallback
 * poll. `self`: the entry of the waiter whose attempt runs this; its grant goes in the reply, not
 * in a message. Returns `'self'`, `true` (granted to another), or `nil` (nobody left in line).
 */
const GRANT_NEXT = `${FENCE}${wakeFunction('KEYS[3]', '^(%S+) (%S+) (%S+) ')}
local granted
local function grant_next(self)
  for _ = 1, 10 do
    local head = redis.call('zpopmin', KEYS[3])
    if head[1] == nil then return nil end
    local mode, channel, id, token, px = string.match(head[1], '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
    if mode then
      if px == '-' then
        redis.call('set', KEYS[1], token)
      else
        redis.call('set', KEYS[1], token, 'PX', px)
      end
      granted = fence()
      if head[1] == self then return 'self' end
      local message = id .. ' ' .. granted
      if string.sub(id, -1) == '.' then
        -- A waiter that reads the server's time of its grant (core/dated-grant.ts, TIMED_ID).
        local t = redis.call('time')
        message = message .. ' ' .. string.format('%d', t[1] * 1000 + math.floor(t[2] / 1000))
      end
      local sent
      if mode == 's' then
        sent = redis.pcall('spublish', channel, message)
      else
        sent = redis.pcall('publish', channel, message)
      end
      if type(sent) ~= 'number' or sent > 0 or mode == 'b' then return true end
      redis.call('del', KEYS[1])
    end
  end
  wake_next()
  return nil
end`;

/**
 * Takes the lock (strict first come, first served). KEYS: lock, counter, queue. ARGV: token,
 * expire in ms or '', the waiter's entry or '' (not waiting yet).
 * - A waiter whose token holds the lock (granted by a release whose message it did not get yet,
 *   or lost) holds it: a new fencing token is issued (the one in the message was never used)
 *   and its expiry starts again (the client counts it from this attempt).
 * - A free lock with nobody in line is taken. A free lock with a line goes to the first live
 *   waiter (a holder that expired without releasing leaves that): a newcomer never jumps it.
 * Returns the fencing token: an integer when a newcomer found nobody in line (the uncontended
 * case, which runs first, before the rest of the script is even defined: measured, both save
 * server time), else a decimal string; or, when the lock is (now) held by another, `{pttl}`
 * (-1 without expiry) and, for a waiter, its place in line: `{pttl, rank}`, and when the holder
 * has no expiry the line's remaining time too: `{-1, rank, line pttl}`. An attempt that queued
 * its waiter adds the server's time then (ms): `{pttl, rank, nil, ms}`, `{-1, rank, line pttl,
 * ms}` (the waiter dates a grant's message by it, index.ts).
 * A waiter keeps its place across attempts. An attempt of a waiter already in line reads (GET,
 * PTTL, ZRANK, the line's PTTL): only a missing entry (a first attempt, or a line lost to a
 * restart or a flush) is queued at the back (TIME, ZADD). Every waiter's attempt makes the line
 * outlive the holder by a minute (`keep_line`: a PEXPIRE only when the holder's TTL outgrew it,
 * after an extend or a grant; its expiry never moves earlier), and every waiter attempts again
 * by the TTL of the holder it saw: so no waiter has to poll to keep the line. While the holder
 * has no expiry, the line expires a minute after the last waiter's attempt (`renewWithin`).
 */
export const ACQUIRE = new Script(`
if ARGV[3] == '' and redis.call('exists', KEYS[3]) == 0 then
  -- Nobody in line (the uncontended case): SET NX and count, or the holder's TTL.
  local taken
  if ARGV[2] == '' then
    taken = redis.call('set', KEYS[1], ARGV[1], 'NX')
  else
    taken = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
  end
  if not taken then return {redis.call('pttl', KEYS[1])} end
  ${COUNT}
  return n
end
${GRANT_NEXT}
local entry = ARGV[3]
-- Makes the line live at least ms more (within a second), never less than it would; returns its
-- remaining ms.
-- Within a second counts as kept: the holder's and the line's PTTL are read at different
-- instants, and a script preempted across a millisecond would move the line for nothing.
local function keep_line(ms)
  local left = redis.call('pttl', KEYS[3])
  if left >= ms - 1000 then return left end
  redis.call('pexpire', KEYS[3], ms)
  return ms
end
local holder = redis.call('get', KEYS[1])
if entry ~= '' and holder == ARGV[1] then
  -- Granted while its message was lost: the expiry starts again now, so that the client, which
  -- counts it from this attempt, never believes it holds the lock after the server let it go.
  redis.call('zrem', KEYS[3], entry)
  if ARGV[2] ~= '' then redis.call('pexpire', KEYS[1], ARGV[2]) end
  return fence()
end
-- The server's time (ms) when this attempt queued its waiter: in the refusal's reply.
local queued_at
if not holder then
  local line = redis.call('exists', KEYS[3]) == 1
  if line and entry ~= '' then
    local t = redis.call('time')
    redis.call('zadd', KEYS[3], 'NX', t[1] * 1000000 + t[2], entry)
    queued_at = t[1] * 1000 + math.floor(t[2] / 1000)
  end
  local given = line and grant_next(entry)
  if given == 'self' then return granted end
  if not given and (entry == '' or not line) then
    if ARGV[2] == '' then
      redis.call('set', KEYS[1], ARGV[1])
    else
      redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
    end
    return fence()
  end
end
local ttl = redis.call('pttl', KEYS[1])
-- Still free (more than 10 dead waiters were ahead): try again at once.
if ttl == -2 then ttl = 0 end
if entry == '' then return {ttl} end
local rank = redis.call('zrank', KEYS[3], entry)
if not rank then
  -- A first attempt, or the line was lost: at the back of the line.
  local t = redis.call('time')
  redis.call('zadd', KEYS[3], 'NX', t[1] * 1000000 + t[2], entry)
  rank = redis.call('zrank', KEYS[3], entry)
  queued_at = t[1] * 1000 + math.floor(t[2] / 1000)
end
-- The line outlives the holder by a minute (a holder without expiry: a minute from now).
if ttl >= 0 then
  keep_line(ttl + 60000)
  if queued_at then return {ttl, rank, false, queued_at} end
  return {ttl, rank}
end
return {ttl, rank, keep_line(60000), queued_at}`);

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

/**
 * Compare-and-delete, then grant the lock to the first live waiter in line. Nobody in line (the
 * uncontended case) returns before the rest of the script is defined, on an EXISTS (measured:
 * cheaper than the ZPOPMIN of an empty line).
 * KEYS: lock, counter, queue. ARGV: token.
 */
export const RELEASE_AND_GRANT = new Script(`
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('del', KEYS[1])
if redis.call('exists', KEYS[3]) == 0 then return 1 end
${GRANT_NEXT}
grant_next(nil)
return 1`);

/**
 * A waiter gives up (timeout, abort, a failed attempt): it leaves the line; if it was granted
 * the lock meanwhile (the message may be on its way), it releases it; and a free lock goes to
 * the next in line. KEYS: lock, counter, queue. ARGV: the waiter's entry, its token.
 */
export const LEAVE = new Script(`${GRANT_NEXT}
redis.call('zrem', KEYS[3], ARGV[1])
local holder = redis.call('get', KEYS[1])
if holder == ARGV[2] then
  redis.call('del', KEYS[1])
  holder = false
end
if not holder then grant_next(nil) end
return 1`);

export const ioredis = () => loadDriver<IoredisModule>('redis', 'ioredis');

// Fail commands fast while the server is down instead of queueing them for long.
export const FAIL_FAST = { maxRetriesPerRequest: 1 };
