import type { ElectionBackend, LockTarget } from '../../core/backend.js';
import { EXTEND_LEADER, LEADER, PROCLAIM } from './election-scripts.js';
import type { RedisCommands } from './scripts.js';
import { siblingKey } from './slots.js';

const publishedKeys = new WeakMap<LockTarget, string>();

/** The key of what an election's leader published: next to the lock, in its cluster slot. */
function publishedKey(lock: LockTarget): string {
  let key = publishedKeys.get(lock);
  if (key === undefined) {
    key = siblingKey(lock.key, lock.namespace, 'leader', `:${lock.key}`);
    publishedKeys.set(lock, key);
  }
  return key;
}

const redis = (lock: LockTarget) => lock.client as RedisCommands;

/** Leader election on Redis: see election-scripts.ts. */
export const redisElection: ElectionBackend<RedisCommands, undefined> = {
  async proclaim(lock, token, term, value) {
    const keys = [lock.key, publishedKey(lock)];
    return (await PROCLAIM.run(redis(lock), keys, [token, term, value])) === 1;
  },
  async extend(lock, token, ttl) {
    const keys = [lock.key, publishedKey(lock)];
    return (await EXTEND_LEADER.run(redis(lock), keys, [token, String(Math.ceil(ttl))])) === 1;
  },
  async leader(lock) {
    const reply = await LEADER.run(redis(lock), [lock.key, publishedKey(lock)], []);
    if (!Array.isArray(reply)) return null;
    const [term, value] = reply as [string?, string?];
    return { term: term ?? null, value: value ?? null };
  },
};
