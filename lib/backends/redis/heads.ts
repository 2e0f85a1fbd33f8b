import { count } from './scripts.js';

/**
 * The Lua of the uncontended heads of the Redis semaphore's and read-write lock's scripts
 * (semaphore-scripts.ts, read-write-scripts.ts): the part run when nobody is in line, before the
 * rest of the script is even defined.
 */

/** Lua statements setting the local `now`: the server's time in ms (`TIME`). */
export const SERVER_NOW = `
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * Lua statements of the uncontended heads of the semaphore's and the read-write lock's acquire
 * scripts (after SERVER_NOW): add `token` to the sorted set `holders` (Lua expressions), scored by
 * its expiry `px` (an ARGV: ms, or '' for none, scored `+inf`), and return the next fencing
 * token of `counter`. `held`: how many members the set had (a Lua expression). The set's expiry
 * is the latest of its members' at least: set on a new set, only ever moved later, none while a
 * member has none (a set without expiry, PTTL -1, holds one).
 */
export const holdAlone = (
  holders: string,
  token: string,
  px: string,
  held: string,
  counter: string,
) => `
if ${px} == '' then
  redis.call('zadd', ${holders}, '+inf', ${token})
  redis.call('persist', ${holders})
else
  local ms = tonumber(${px})
  redis.call('zadd', ${holders}, string.format('%.0f', now + ms), ${token})
  if ${held} == 0 then
    redis.call('pexpire', ${holders}, ${px})
  else
    local left = redis.call('pttl', ${holders})
    if left >= 0 and left < ms then redis.call('pexpire', ${holders}, ${px}) end
  end
end
${count(counter)}
return string.format('%d', n)`;

/**
 * Lua statements of the uncontended heads of the semaphore's and the read-write lock's release
 * scripts (nobody in line: nobody to hand on to): remove `token` from the sorted set `holders`
 * (Lua expressions) and return 1, or 0 if it is not a member or its expiry has passed. The set
 * keeps its expiry (what expired meanwhile is ignored by every script), unless the member had
 * none: then the set expires with its latest member again.
 */
export const giveBackAlone = (holders: string, token: string) => `
local score = redis.call('zscore', ${holders}, ${token})
if not score then return 0 end
redis.call('zrem', ${holders}, ${token})
${SERVER_NOW}
if score ~= 'inf' then
  if tonumber(score) <= now then return 0 end
  return 1
end
local last = redis.call('zrange', ${holders}, -1, -1, 'WITHSCORES')
if last[2] ~= nil and last[2] ~= 'inf' then
  local left = math.max(1, math.ceil(tonumber(last[2]) - now))
  redis.call('pexpire', ${holders}, string.format('%.0f', left))
end
return 1`;
