import { giveBackAlone, holdAlone, SERVER_NOW } from './heads.js';
import { fenceFunction, Script, wakeFunction } from './scripts.js';

/**
 * The Lua scripts of a Redis semaphore. Its permits are a sorted set (KEYS[1]) of owner tokens
 * scored by their expiry time in ms, **by the server's clock** (`TIME`): every script counts only
 * the permits whose expiry has not passed (the full scripts drop the others first; the
 * uncontended heads below ignore them), so a holder that died frees its permit at the server, on
 * the server's clock alone. A permit without expiry is scored `+inf`. The set itself expires no
 * earlier than its latest permit. Its waiters queue in a line (a sorted set, as a lock's do) and
 * a release gives the freed permit to the first in line directly, telling it over pub/sub (one
 * waiter per freed permit).
 */

/** `now` (ms, server clock) and the drop of the expired permits. */
const PRELUDE = `
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function ms(n) return string.format('%.0f', n) end
redis.call('zremrangebyscore', KEYS[1], '-inf', ms(now))
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
 * Direct grant, strict first come, first served. The line KEYS[3] is a sorted set of waiter
 * entries by arrival (µs, server clock): `<mode> <channel> <id> <owner token> <expire in ms or
 * -> <limit>`, mode as a lock waiter's (scripts.ts, GRANT_NEXT). `grant(self)`: while the waiter
 * at the head may take a permit (fewer than its own limit held), it is popped and given one: its
 * token added to the permits with its expiry, the next fencing token issued, and `<id> <fencing
 * token>` published on its channel; a reply of 0 with mode `p`/`s` (its process is gone) takes
 * the permit back and goes on (up to 10 such a call; then `wake_next` wakes the next live one,
 * whose attempt goes on). One waiter per free permit. `self`: the entry of the waiter whose
 * attempt runs this; its grant goes in the reply (`granted`). Returns true if `self` was granted.
 */
const GRANT = `${wakeFunction('KEYS[3]', '^(%S+) (%S+) (%S+) ')}
${fenceFunction('KEYS[2]')}
local granted
local function grant(self)
  local mine = false
  local dead = 0
  while dead < 10 do
    local head = redis.call('zrange', KEYS[3], 0, 0)
    if head[1] == nil then break end
    local mode, channel, id, token, px, limit =
      string.match(head[1], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%d+)$')
    if not mode then
      redis.call('zrem', KEYS[3], head[1])
    else
      if redis.call('zcard', KEYS[1]) >= tonumber(limit) then break end
      redis.call('zrem', KEYS[3], head[1])
      local score = '+inf'
      if px ~= '-' then score = ms(now + tonumber(px)) end
      redis.call('zadd', KEYS[1], score, token)
      keep()
      local n = fence()
      if head[1] == self then
        granted = n
        mine = true
      else
        local message = id .. ' ' .. n
        -- A waiter that reads the server's time of its grant (core/dated-grant.ts, TIMED_ID).
        if string.sub(id, -1) == '.' then message = message .. ' ' .. ms(now) end
        local sent
        if mode == 's' then
          sent = redis.pcall('spublish', channel, message)
        else
          sent = redis.pcall('publish', channel, message)
        end
        if type(sent) == 'number' and sent == 0 and mode ~= 'b' then
          redis.call('zrem', KEYS[1], token)
          keep()
          dead = dead + 1
        end
      end
    end
  end
  if dead >= 10 then wake_next() end
  return mine
end`;

/**
 * The uncontended head of ACQUIRE_PERMIT: a newcomer (no waiter entry) and nobody in line. It
 * runs before the rest of the script is even defined (no `PRELUDE` or `GRANT` functions made:
 * measured, it saves server time) and does what the whole script does in that case: takes a
 * permit if fewer than ARGV[3] are held (expired permits are dropped first only when the set
 * looks full: fewer members than the limit, expired or not, leave room), the set's expiry made
 * the latest of its permits' (set on a new set, moved later only, removed for a permit without
 * expiry); or replies `{ttl}` of the first permit to expire (-1: it has no expiry).
 */
const NEWCOMER = `
if ARGV[4] == '' and redis.call('exists', KEYS[3]) == 0 then
  ${SERVER_NOW}
  local held = redis.call('zcard', KEYS[1])
  if held >= tonumber(ARGV[3]) then
    redis.call('zremrangebyscore', KEYS[1], '-inf', string.format('%.0f', now))
    held = redis.call('zcard', KEYS[1])
  end
  if held < tonumber(ARGV[3]) then
    ${holdAlone('KEYS[1]', 'ARGV[1]', 'ARGV[2]', 'held', 'KEYS[2]')}
  end
  local first = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
  if first[2] == 'inf' then return {-1} end
  return {math.max(0, math.ceil(tonumber(first[2]) - now))}
end`;

/**
 * The uncontended head of RELEASE_PERMIT: nobody in line, so no permit to hand on; as the whole
 * script, without defining it (see NEWCOMER): gives back ARGV[1]'s permit, 0 if it holds none or
 * it expired (scripts.ts, giveBackAlone).
 */
const NOBODY_IN_LINE = `
if redis.call('exists', KEYS[3]) == 0 then
  ${giveBackAlone('KEYS[1]', 'ARGV[1]')}
end`;

/**
 * Takes a permit (strict first come, first served). KEYS: permits, counter, line. ARGV: token,
 * expire in ms or '', limit, the waiter's entry or '' (not waiting: never queues).
 * - A waiter whose token already holds a permit (granted by a release whose message it did not
 *   get yet, or lost) holds it: a new fencing token is issued and its expiry starts again.
 * - Otherwise the line moves first (permits that expired go to the head), then an empty line
 *   lets a newcomer take a permit if fewer than ARGV[3] are held; a waiter queues (once, keeping
 *   its place) and takes one if the line reaches it.
 * Returns the fencing token as a string; or `{ttl}` (ms until the first permit expires, -1 if
 * none does) and, for a waiter, its place in line and the server's time (ms): `{ttl, rank, now}`. The line expires a minute
 * after the last waiter's attempt.
 */
export const ACQUIRE_PERMIT = new Script(`${NEWCOMER}${PRELUDE}${GRANT}
local entry = ARGV[4]
if entry ~= '' and redis.call('zscore', KEYS[1], ARGV[1]) then
  -- Granted while its message was lost: the permit's expiry starts again now (the client counts
  -- it from this attempt).
  redis.call('zrem', KEYS[3], entry)
  if ARGV[2] ~= '' then
    redis.call('zadd', KEYS[1], ms(now + tonumber(ARGV[2])), ARGV[1])
    keep()
  end
  return fence()
end
if entry ~= '' then
  redis.call('zadd', KEYS[3], 'NX', t[1] * 1000000 + t[2], entry)
end
local line = redis.call('exists', KEYS[3]) == 1
if line and grant(entry) then return granted end
if entry == '' and redis.call('exists', KEYS[3]) == 0 then
  if redis.call('zcard', KEYS[1]) < tonumber(ARGV[3]) then
    local score = '+inf'
    if ARGV[2] ~= '' then score = ms(now + tonumber(ARGV[2])) end
    redis.call('zadd', KEYS[1], score, ARGV[1])
    keep()
    return fence()
  end
end
local first = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
local ttl = 0
if first[2] == 'inf' then ttl = -1 end
if first[2] and first[2] ~= 'inf' then ttl = math.max(0, math.ceil(tonumber(first[2]) - now)) end
if entry == '' then return {ttl} end
redis.call('pexpire', KEYS[3], 60000)
return {ttl, redis.call('zrank', KEYS[3], entry), now}`);

/**
 * Gives back the permit of ARGV[1] if it still holds one, then grants the free permits to the
 * waiters at the head of the line, one each. KEYS: permits, counter, line. ARGV: token.
 * Returns 1, or 0 if the token holds no permit.
 */
export const RELEASE_PERMIT = new Script(`${NOBODY_IN_LINE}${PRELUDE}${GRANT}
if redis.call('zrem', KEYS[1], ARGV[1]) == 0 then return 0 end
keep()
grant(nil)
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
 * A waiter gives up (timeout, abort, a failed attempt): it leaves the line; if it was granted a
 * permit meanwhile (the message may be on its way, or lost), it gives it back; then the line
 * moves. KEYS: permits, counter, line. ARGV: the waiter's entry, its token.
 */
export const LEAVE_PERMITS = new Script(`${PRELUDE}${GRANT}
redis.call('zrem', KEYS[3], ARGV[1])
if redis.call('zrem', KEYS[1], ARGV[2]) == 1 then keep() end
grant(nil)
return 1`);
