/**
 * "Our scripts, raw ioredis" (issue 11 part 3, bench:parity): this library's Redis ACQUIRE and
 * RELEASE_AND_GRANT scripts sent by a bare `evalsha` with the same keys and arguments the library
 * sends (lock key, fencing counter, queue; an owner token of the same shape and length, the
 * default 60 s expiry, no waiter entry), without the library around them. The library's lock
 * against this row is the library's client-side cost; this row against redis-semaphore is the
 * server's (the scripts') cost.
 */
import { hostname } from 'node:os';
import { ACQUIRE, RELEASE_AND_GRANT } from '../../lib/backends/redis/scripts.js';
import { siblingKey } from '../../lib/backends/redis/slots.js';
import { newOwnerToken } from '../../lib/core/timing.js';
import type { Contender } from './contenders.js';

/** The owner token's constant tail, as the library's default manager builds it (no appName). */
const SUFFIX = `|${process.pid}|${encodeURIComponent(hostname())}|`;
/** The library's default `expire` (60 s), as the script gets it. */
const EXPIRE = '60000';

export const rawScripts: Contender = {
  id: 'raw-scripts-redis',
  label: 'our scripts, raw ioredis (EVALSHA × 2)',
  backend: 'redis',
  role: 'floor',
  waits: '— (one attempt)',
  polling: false,
  blocking: false,
  async prepare(clients) {
    const redis = clients.redis;
    if (!redis) throw new Error('no redis client in this process');
    await redis.script('LOAD', ACQUIRE.source);
    await redis.script('LOAD', RELEASE_AND_GRANT.source);
  },
  make(clients, key) {
    const redis = clients.redis;
    if (!redis) throw new Error('no redis client in this process');
    const fencing = siblingKey(key, null, 'fence');
    const queue = siblingKey(key, null, 'queue', `:${key}`);
    let owner = '';
    return {
      async acquire() {
        owner = `${newOwnerToken()}|${Date.now()}${SUFFIX}`;
        const reply = await redis.evalsha(ACQUIRE.sha, 3, key, fencing, queue, owner, EXPIRE, '');
        if (typeof reply !== 'string' && typeof reply !== 'number')
          throw new Error(`${key}: taken`);
      },
      async release() {
        const reply = await redis.evalsha(RELEASE_AND_GRANT.sha, 3, key, fencing, queue, owner);
        if (reply !== 1) throw new Error(`${key}: lost`);
      },
    };
  },
};
