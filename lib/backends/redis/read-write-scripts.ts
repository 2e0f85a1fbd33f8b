import { giveBackAlone, holdAlone, SERVER_NOW } from './heads.js';
import { fenceFunction, Script, wakeFunction } from './scripts.js';

/**
 * The Lua scripts of a Redis read-write lock, first come, first served by direct grant. All its
 * keys are in one cluster slot:
 * - KEYS[1] readers: a sorted set of reader owner tokens scored by their expiry in ms, **by the
 *   server's clock** (`TIME`), `+inf` without expiry;
 * - KEYS[2] writer: the same, with at most one member;
 * - KEYS[3] the fencing counter (the lock's, shared by the slot);
 * - KEYS[4] the line: a sorted set of waiter entries scored by arrival (µs, server clock),
 *   `<side> <mode> <channel> <id> <owner token> <expire in ms or ->`, side `r` or `w`, mode as a
 *   lock waiter's (scripts.ts, GRANT_NEXT).
 * Every script counts only the holdings whose expiry has not passed (the full scripts drop the
 * expired ones first; the uncontended heads below ignore them); each set expires no earlier than
 * its latest member.
 */

/** `now` (ms, server clock), the drop of what expired, `keep(key)` and `fence()`. */
const PRELUDE = `
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function ms(n) return string.format('%.0f', n) end
for i = 1, 2 do redis.call('zremrangebyscore', KEYS[i], '-inf', ms(now)) end
-- A set expires with its last member (never while one without expiry is in it).
local function keep(key)
  local last = redis.call('zrange', key, -1, -1, 'WITHSCORES')
  if last[2] == nil then return end
  if last[2] == 'inf' then
    redis.call('persist', key)
  else
    redis.call('pexpire', key, ms(math.max(1, math.ceil(tonumber(last[2]) - now))))
  end
end
-- ms until the first (or last) member of a set expires: -1 without expiry, nil if empty.
local function ttl_of(key, which)
  local member = redis.call('zrange', key, which, which, 'WITHSCORES')
  if member[2] == nil then return nil end
  if member[2] == 'inf' then return -1 end
  return math.max(0, math.ceil(tonumber(member[2]) - now))
end
${fenceFunction('KEYS[3]')}
-- Holds side (KEYS[1] readers, KEYS[2] the writer) for token, for px ms ('-': no expiry).
local function hold(holders, token, px)
  local score = '+inf'
  if px ~= '-' and px ~= '' then score = ms(now + tonumber(px)) end
  redis.call('zadd', holders, score, token)
  keep(holders)
end`;

/**
 * `grant(self)`: direct grant, in order of arrival. While the head of the line may go in, it is
 * popped and given its side: a writer when nobody holds (then nobody else), a reader when no
 * writer holds (and the readers right behind it too, up to the next writer). Each grant issues
 * the next fencing token and publishes `<id> <fencing token>` on the waiter's channel; a reply of
 * 0 with mode `p`/`s` (the waiter's process is gone) takes the grant back and goes on (up to 10
 * such a call; then `wake_next` wakes the next live one, whose attempt goes on). `self`: the
 * entry of the waiter whose attempt runs this; its grant goes in the reply (`granted`), not in a
 * message. Returns true if `self` was granted.
 */
const GRANT = `${wakeFunction('KEYS[4]', '^%S+ (%S+) (%S+) (%S+) ')}
local granted
local function grant(self)
  local mine = false
  local dead = 0
  while dead < 10 do
    local head = redis.call('zrange', KEYS[4], 0, 0)
    if head[1] == nil then break end
    local side, mode, channel, id, token, px =
      string.match(head[1], '^(%S+) (%S+) (%S+) (%S+) (%S+) (%S+)$')
    if not side then
      redis.call('zrem', KEYS[4], head[1])
    else
      if redis.call('zcard', KEYS[2]) > 0 then break end
      if side == 'w' and redis.call('zcard', KEYS[1]) > 0 then break end
      redis.call('zrem', KEYS[4], head[1])
      local holders = KEYS[1]
      if side == 'w' then holders = KEYS[2] end
      hold(holders, token, px)
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
          redis.call('zrem', holders, token)
          keep(holders)
          dead = dead + 1
        end
      end
    end
  end
  if dead >= 10 then wake_next() end
  return mine
end`;

/**
 * The uncontended head of ACQUIRE_RW: a newcomer (no waiter entry) and nobody in line. It runs
 * before the rest of the script is even defined (no `PRELUDE` or `GRANT` functions made, as
 * the semaphore's) and does what the whole script does then when the side may go in: a reader
 * when no writer holds, a writer when nobody holds (holdings whose expiry passed do not count;
 * they are dropped by the next full script); its set's expiry only ever moves later (none while
 * a member has none). Otherwise it goes on to the whole script, which answers the refusal.
 */
const NEWCOMER_RW = `
if ARGV[4] == '' and redis.call('exists', KEYS[4]) == 0 then
  ${SERVER_NOW}
  local live = '(' .. string.format('%.0f', now)
  local own = KEYS[2]
  if ARGV[1] == 'r' then own = KEYS[1] end
  local free = redis.call('zcount', KEYS[2], live, '+inf') == 0
  if free and ARGV[1] ~= 'r' then free = redis.call('zcount', KEYS[1], live, '+inf') == 0 end
  if free then
    local held = redis.call('zcard', own)
    ${holdAlone('own', 'ARGV[2]', 'ARGV[3]', 'held', 'KEYS[3]')}
  end
end`;

/**
 * The uncontended head of RELEASE_RW: nobody in line, so nobody to let in; as the whole script,
 * without defining it: gives back ARGV[2]'s holding of the side ARGV[1], 0 if it holds none or
 * it expired (scripts.ts, giveBackAlone).
 */
const NOBODY_IN_LINE_RW = `
if redis.call('exists', KEYS[4]) == 0 then
  local holders = KEYS[2]
  if ARGV[1] == 'r' then holders = KEYS[1] end
  ${giveBackAlone('holders', 'ARGV[2]')}
end`;

/**
 * Takes the read (ARGV[1] 'r') or write ('w') side for ARGV[2] (first come, first served).
 * KEYS: readers, writer, counter, line. ARGV: side, token, expire in ms or '', the waiter's
 * entry or '' (not waiting: never queues).
 * - A waiter whose token already holds its side (granted by a release whose message it did not
 *   get yet, or lost) holds it: a new fencing token is issued and its expiry starts again.
 * - Otherwise the line moves first (holders that expired leave room for the head), then an empty
 *   line lets a newcomer in if its side may go in now; a waiter queues (once, keeping its place)
 *   and goes in if the line reaches it.
 * Returns the fencing token as a string; refused: `{ttl}` (ms until what is in the way may
 * expire, -1 if unknown) or, for a waiter, `{ttl, rank, server ms}`. The line expires a minute after the
 * last waiter's attempt.
 */
export const ACQUIRE_RW = new Script(`${NEWCOMER_RW}${PRELUDE}${GRANT}
local reading = ARGV[1] == 'r'
local own = KEYS[2]
if reading then own = KEYS[1] end
local entry = ARGV[4]
if entry ~= '' and redis.call('zscore', own, ARGV[2]) then
  -- Granted while its message was lost: its expiry starts again now (the client counts it from
  -- this attempt).
  redis.call('zrem', KEYS[4], entry)
  hold(own, ARGV[2], ARGV[3])
  return fence()
end
if entry ~= '' then
  redis.call('zadd', KEYS[4], 'NX', t[1] * 1000000 + t[2], entry)
end
if redis.call('exists', KEYS[4]) == 1 and grant(entry) then return granted end
if entry == '' and redis.call('exists', KEYS[4]) == 0 then
  local free = redis.call('zcard', KEYS[2]) == 0
  if free and not reading then free = redis.call('zcard', KEYS[1]) == 0 end
  if free then
    hold(own, ARGV[2], ARGV[3])
    return fence()
  end
end
local ttl = ttl_of(KEYS[2], 0)
if ttl == nil then ttl = ttl_of(KEYS[1], -1) end
-- Nothing in the way any more (more than 10 dead waiters were ahead): try again at once.
if ttl == nil then ttl = 0 end
if entry == '' then return {ttl} end
redis.call('pexpire', KEYS[4], 60000)
return {ttl, redis.call('zrank', KEYS[4], entry), now}`);

/**
 * Gives back ARGV[2]'s holding of the side ARGV[1] ('r' / 'w'), then grants whom it lets in.
 * KEYS: readers, writer, counter, line. Returns 1, or 0 if the token holds nothing.
 */
export const RELEASE_RW = new Script(`${NOBODY_IN_LINE_RW}${PRELUDE}${GRANT}
local holders = KEYS[2]
if ARGV[1] == 'r' then holders = KEYS[1] end
if redis.call('zrem', holders, ARGV[2]) == 0 then return 0 end
keep(holders)
grant(nil)
return 1`);

/**
 * Sets the expiry of ARGV[2]'s holding of the side ARGV[1] ('r' / 'w') to ARGV[3] ms from now.
 * KEYS: readers, writer. Returns 1, or 0 if the token holds nothing.
 */
export const EXTEND_RW = new Script(`${PRELUDE}
local holders = KEYS[2]
if ARGV[1] == 'r' then holders = KEYS[1] end
if not redis.call('zscore', holders, ARGV[2]) then return 0 end
redis.call('zadd', holders, 'XX', ms(now + tonumber(ARGV[3])), ARGV[2])
keep(holders)
return 1`);

/**
 * `{readers, writer, writers in line}` now. KEYS: readers, writer, line. Read-only.
 */
export const STATE_RW = new Script(`
local t = redis.call('time')
local now = '(' .. string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
local writers = 0
for _, each in ipairs(redis.call('zrange', KEYS[3], 0, -1)) do
  if string.sub(each, 1, 2) == 'w ' then writers = writers + 1 end
end
return {
  redis.call('zcount', KEYS[1], now, '+inf'),
  redis.call('zcount', KEYS[2], now, '+inf'),
  writers,
}`);

/**
 * A waiter gives up (timeout, abort, a failed attempt): it leaves the line; if it was granted its
 * side meanwhile (the message may be on its way, or lost), it gives it back; then the line moves.
 * KEYS: readers, writer, counter, line. ARGV: side, the waiter's entry, its token.
 */
export const LEAVE_RW = new Script(`${PRELUDE}${GRANT}
redis.call('zrem', KEYS[4], ARGV[2])
local holders = KEYS[2]
if ARGV[1] == 'r' then holders = KEYS[1] end
if redis.call('zrem', holders, ARGV[3]) == 1 then keep(holders) end
grant(nil)
return 1`);
