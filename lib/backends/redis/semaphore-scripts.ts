import { Script } from './scripts.js';

/**
 * The Lua scripts of a Redis semaphore. Its permits are a sorted set (KEYS[1]) of owner tokens
 * scored by their expiry time in ms, **by the server's clock** (`TIME`): every script first drops
 * the permits whose expiry has passed, so a holder that died frees its permit at the server, on
 * the server's clock alone. A permit without expiry is scored `+inf`. The set itself expires with
 * its last permit. Its waiters queue in a sorted set (as a lock's do) and are woken over pub/sub,
 * one per freed permit.
 */

/** `now` (ms, server clock) and the drop of the expired permits: `reaped` is how many. */
const PRELUDE = `
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function ms(n) return string.format('%.0f', n) end
local reaped = redis.call('zremrangebyscore', KEYS[1], '-inf', ms(now))
-- The set expires with its last permit (never while a permit without expiry is held).
local function keep()
  local last = redis.call('zrange', KEYS[1], -1, -1, 'WITHSCORES')
  if last[2] == nil then return end
  if last[2] == 'inf' then
    redis.call('persist', KEYS[1])
  else
    redis.call('pexpire', KEYS[1], ms(math.max(1, math.ceil(tonumber(last[2]) - now))))
  end
end`;

/**
 * Wakes the first live waiter of the queue `queue` (entries `<channel> <id>`): pops it and
 * publishes its id on its channel; a channel nobody listens on (a dead process) is dropped and
 * the next tried, up to 5. As for locks, in a Redis Cluster it may wake a few (see scripts.ts).
 */
const WAKE_ONE = `
local function wake_one(queue)
  for _ = 1, 5 do
    local head = redis.call('zpopmin', queue)
    if head[1] == nil then return end
    local channel, id = string.match(head[1], '^(%S+) (%S+)$')
    local sent = channel and redis.pcall('publish', channel, id)
    if type(sent) ~= 'number' or sent > 0 then return end
  end
end`;

/**
 * Takes a permit if fewer than ARGV[3] are held, and INCRs the fencing counter (seeded from the
 * server's clock in microseconds when it does not exist, as for locks).
 * KEYS: permits, counter, queue. ARGV: token, expire in ms or '', limit, the waiter's entry or ''
 * (not waiting yet), '1' to queue at the front (a waiter woken that lost the race) or ''.
 * Returns the counter as a string; or, when every permit is taken, `{ttl}` (ms until the first
 * permit expires, -1 if none does) and, for a waiter, its place in the queue: `{ttl, rank}`.
 */
export const ACQUIRE_PERMIT = new Script(`${PRELUDE}
if redis.call('zcard', KEYS[1]) < tonumber(ARGV[3]) then
  local score = '+inf'
  if ARGV[2] ~= '' then score = ms(now + tonumber(ARGV[2])) end
  redis.call('zadd', KEYS[1], score, ARGV[1])
  keep()
  if ARGV[4] ~= '' then redis.call('zrem', KEYS[3], ARGV[4]) end
  local n = redis.call('incr', KEYS[2])
  if n == 1 then
    n = redis.call('incrby', KEYS[2], t[1] .. string.format('%06d', tonumber(t[2])))
  end
  return string.format('%d', n)
end
local first = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
local ttl = -1
if first[2] ~= 'inf' then ttl = math.max(0, math.ceil(tonumber(first[2]) - now)) end
if ARGV[4] == '' then return {ttl} end
if ARGV[5] == '1' then
  local head = redis.call('zrange', KEYS[3], 0, 0, 'WITHSCORES')
  local score = head[2] and (tonumber(head[2]) - 1) or (t[1] * 1000000 + t[2])
  redis.call('zadd', KEYS[3], score, ARGV[4])
else
  redis.call('zadd', KEYS[3], 'NX', t[1] * 1000000 + t[2], ARGV[4])
end
redis.call('pexpire', KEYS[3], 60000)
return {ttl, redis.call('zrank', KEYS[3], ARGV[4])}`);

/**
 * Gives back the permit of ARGV[1] if it still holds one, then wakes one waiter for it (and one
 * for each expired permit dropped just now), as many as there are free permits under ARGV[2].
 * KEYS: permits, queue. ARGV: token, limit. Returns 1, or 0 if the token holds no permit.
 */
export const RELEASE_PERMIT = new Script(`${PRELUDE}${WAKE_ONE}
if redis.call('zrem', KEYS[1], ARGV[1]) == 0 then return 0 end
keep()
local free = tonumber(ARGV[2]) - redis.call('zcard', KEYS[1])
for _ = 1, math.min(free, 1 + reaped) do wake_one(KEYS[2]) end
return 1`);

/** Sets the expiry of ARGV[1]'s permit to ARGV[2] ms from now. KEYS: permits. Returns 1 or 0. */
export const EXTEND_PERMIT = new Script(`${PRELUDE}
if not redis.call('zscore', KEYS[1], ARGV[1]) then return 0 end
redis.call('zadd', KEYS[1], 'XX', ms(now + tonumber(ARGV[2])), ARGV[1])
keep()
return 1`);

/** How many permits are held (not expired). KEYS: permits. Read-only. */
export const COUNT_PERMITS = new Script(`
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('zcount', KEYS[1], '(' .. string.format('%.0f', now), '+inf')`);

/**
 * A waiter gives up (timeout, abort): it leaves the queue, and if a permit is free under its
 * limit (a release may have woken it just before it left), wakes the next one in its place.
 * KEYS: permits, queue. ARGV: the waiter's entry, limit.
 */
export const LEAVE_PERMITS = new Script(`${PRELUDE}${WAKE_ONE}
redis.call('zrem', KEYS[2], ARGV[1])
if redis.call('zcard', KEYS[1]) < tonumber(ARGV[2]) then wake_one(KEYS[2]) end
return 1`);
