import { Script } from './scripts.js';

/**
 * The Lua scripts of a Redis read-write lock. All its keys are in one cluster slot:
 * - KEYS[1] readers: a sorted set of reader owner tokens scored by their expiry in ms, **by the
 *   server's clock** (`TIME`), `+inf` without expiry;
 * - KEYS[2] writer: the same, with at most one member;
 * - KEYS[3] waiting writers: a sorted set of writer waiters' ids scored by the time their wait
 *   lapses (a waiter renews it with each attempt, so a dead one stops blocking readers on its
 *   own, on the server's clock);
 * - then the fencing counter (the lock's, shared by the slot) and the wake-up queues of waiting
 *   readers and waiting writers (entries `<channel> <id>`, as a lock's).
 * Every script first drops what has expired; each set expires with its last member.
 */

/** `now` (ms, server clock), the drop of what expired, and `keep(key)`. KEYS[1..3] as above. */
const PRELUDE = `
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function ms(n) return string.format('%.0f', n) end
for i = 1, 3 do redis.call('zremrangebyscore', KEYS[i], '-inf', ms(now)) end
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
end`;

/**
 * Wakes waiters from the queues QR (readers) and QW (writers), given as KEYS indexes: nothing
 * while a writer holds; the first live writer in line when nobody holds; every waiting reader
 * when no writer waits. A channel nobody listens on (a dead process) is dropped.
 */
const WAKE = (readers: number, writer: number, intents: number, qr: number, qw: number) => `
local function wake_one(queue)
  for _ = 1, 5 do
    local head = redis.call('zpopmin', queue)
    if head[1] == nil then return end
    local channel, id = string.match(head[1], '^(%S+) (%S+)$')
    local sent = channel and redis.pcall('publish', channel, id)
    if type(sent) ~= 'number' or sent > 0 then return end
  end
end
local function wake_all(queue)
  local all = redis.call('zrange', queue, 0, -1)
  if all[1] == nil then return end
  redis.call('del', queue)
  for _, each in ipairs(all) do
    local channel, id = string.match(each, '^(%S+) (%S+)$')
    if channel then redis.pcall('publish', channel, id) end
  end
end
local function wake()
  if redis.call('zcard', KEYS[${writer}]) > 0 then return end
  if redis.call('zcard', KEYS[${readers}]) == 0 then wake_one(KEYS[${qw}]) end
  if redis.call('zcard', KEYS[${intents}]) == 0 then wake_all(KEYS[${qr}]) end
end`;

/**
 * Takes the read (ARGV[1] 'r') or write ('w') side for ARGV[2]. A read is granted while no
 * writer holds or waits; a write while nobody holds. Granted: INCR the fencing counter (seeded
 * from the server's clock in microseconds, as for locks) and return it as a string. Refused:
 * `{ttl}` (ms until what is in the way may expire, -1 if unknown) or, for a waiter, `{ttl, rank}`;
 * a refused blocking writer (ARGV[6]) records that it waits, for ARGV[7] ms.
 * KEYS: readers, writer, waiting writers, counter, reader queue, writer queue.
 * ARGV: mode, token, expire in ms or '', the waiter's entry or '', '1' (woken, queue at the
 * front) or '', the writer waiter's id or '', how long its wait lasts without a renewal (ms).
 */
export const ACQUIRE_RW = new Script(`${PRELUDE}
local reading = ARGV[1] == 'r'
local queue = KEYS[6]
if reading then queue = KEYS[5] end
local free = redis.call('zcard', KEYS[2]) == 0
if free and reading then free = redis.call('zcard', KEYS[3]) == 0 end
if free and not reading then free = redis.call('zcard', KEYS[1]) == 0 end
if free then
  local holders = KEYS[2]
  if reading then holders = KEYS[1] end
  local score = '+inf'
  if ARGV[3] ~= '' then score = ms(now + tonumber(ARGV[3])) end
  redis.call('zadd', holders, score, ARGV[2])
  keep(holders)
  if ARGV[4] ~= '' then redis.call('zrem', queue, ARGV[4]) end
  if ARGV[6] ~= '' then
    redis.call('zrem', KEYS[3], ARGV[6])
    keep(KEYS[3])
  end
  local n = redis.call('incr', KEYS[4])
  if n == 1 then
    n = redis.call('incrby', KEYS[4], t[1] .. string.format('%06d', tonumber(t[2])))
  end
  return string.format('%d', n)
end
local ttl = ttl_of(KEYS[2], 0)
if ttl == nil and reading then ttl = ttl_of(KEYS[3], 0) end
if ttl == nil and not reading then ttl = ttl_of(KEYS[1], -1) end
if ttl == nil then ttl = -1 end
if ARGV[6] ~= '' then
  redis.call('zadd', KEYS[3], ms(now + tonumber(ARGV[7])), ARGV[6])
  keep(KEYS[3])
end
if ARGV[4] == '' then return {ttl} end
if ARGV[5] == '1' then
  local head = redis.call('zrange', queue, 0, 0, 'WITHSCORES')
  local score = head[2] and (tonumber(head[2]) - 1) or (t[1] * 1000000 + t[2])
  redis.call('zadd', queue, score, ARGV[4])
else
  redis.call('zadd', queue, 'NX', t[1] * 1000000 + t[2], ARGV[4])
end
redis.call('pexpire', queue, 60000)
return {ttl, redis.call('zrank', queue, ARGV[4])}`);

/**
 * Gives back ARGV[2]'s holding of the side ARGV[1] ('r' / 'w'), then wakes whom it lets in.
 * KEYS: readers, writer, waiting writers, reader queue, writer queue. Returns 1, or 0 if the
 * token holds nothing.
 */
export const RELEASE_RW = new Script(`${PRELUDE}${WAKE(1, 2, 3, 4, 5)}
local holders = KEYS[2]
if ARGV[1] == 'r' then holders = KEYS[1] end
if redis.call('zrem', holders, ARGV[2]) == 0 then return 0 end
keep(holders)
wake()
return 1`);

/**
 * Sets the expiry of ARGV[2]'s holding of the side ARGV[1] ('r' / 'w') to ARGV[3] ms from now.
 * KEYS: readers, writer, waiting writers. Returns 1, or 0 if the token holds nothing.
 */
export const EXTEND_RW = new Script(`${PRELUDE}
local holders = KEYS[2]
if ARGV[1] == 'r' then holders = KEYS[1] end
if not redis.call('zscore', holders, ARGV[2]) then return 0 end
redis.call('zadd', holders, 'XX', ms(now + tonumber(ARGV[3])), ARGV[2])
keep(holders)
return 1`);

/** `{readers, writer, waiting writers}` now. KEYS: readers, writer, waiting writers. Read-only. */
export const STATE_RW = new Script(`
local t = redis.call('time')
local now = '(' .. string.format('%.0f', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
return {
  redis.call('zcount', KEYS[1], now, '+inf'),
  redis.call('zcount', KEYS[2], now, '+inf'),
  redis.call('zcount', KEYS[3], now, '+inf'),
}`);

/**
 * A waiter gives up (timeout, abort): it leaves its queue and, for a writer, stops waiting; then
 * whoever it held back is woken. KEYS: readers, writer, waiting writers, reader queue, writer
 * queue. ARGV: mode, the waiter's entry or '', the writer waiter's id or ''.
 */
export const LEAVE_RW = new Script(`${PRELUDE}${WAKE(1, 2, 3, 4, 5)}
if ARGV[2] ~= '' then
  local queue = KEYS[5]
  if ARGV[1] == 'r' then queue = KEYS[4] end
  redis.call('zrem', queue, ARGV[2])
end
if ARGV[3] ~= '' then
  redis.call('zrem', KEYS[3], ARGV[3])
  keep(KEYS[3])
end
wake()
return 1`);
