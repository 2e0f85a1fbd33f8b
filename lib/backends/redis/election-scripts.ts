import { Script } from './scripts.js';

/**
 * Leader election on Redis: the election's lock is a Redis lock (its key holds the owner token),
 * and what its holder publishes is a hash next to it, in the same cluster slot:
 * `token`, `term`, `value`, expiring with the lock. It counts only while `token` holds the lock.
 */

/**
 * Publishes, if ARGV[1] holds the lock, with the lock's remaining TTL.
 * KEYS: lock, published. ARGV: token, term, value.
 */
export const PROCLAIM = new Script(`
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('del', KEYS[2])
redis.call('hset', KEYS[2], 'token', ARGV[1], 'term', ARGV[2], 'value', ARGV[3])
local ttl = redis.call('pttl', KEYS[1])
if ttl > 0 then redis.call('pexpire', KEYS[2], ttl) end
return 1`);

/**
 * Extends the lock and what its holder published, if ARGV[1] holds it.
 * KEYS: lock, published. ARGV: token, ttl (ms).
 */
export const EXTEND_LEADER = new Script(`
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('pexpire', KEYS[1], ARGV[2])
if redis.call('hget', KEYS[2], 'token') == ARGV[1] then redis.call('pexpire', KEYS[2], ARGV[2]) end
return 1`);

/**
 * Who holds the lock: nil when nobody does, {} while the holder has not published, else
 * {term, value}. KEYS: lock, published.
 */
export const LEADER = new Script(`
local holder = redis.call('get', KEYS[1])
if not holder then return false end
local published = redis.call('hmget', KEYS[2], 'token', 'term', 'value')
if published[1] ~= holder then return {} end
return {published[2], published[3]}`);
