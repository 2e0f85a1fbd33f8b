export { RedisLock, REDIS, type RedisLockOptions } from './redis.lock.js';
export { MemcachedLock, MCLock, MEMCACHED, type MemcachedLockOptions } from './memcached.lock.js';
export { EtcdLock, ETCD, type EtcdLockOptions } from './etcd.lock.js';
export { MemoryLock, MemoryStore, MEMORY, type MemoryLockOptions } from './memory.lock.js';
export {
  RedlockLock,
  RedisQuorum,
  REDLOCK,
  type RedlockLockOptions,
  type RedisQuorumOptions,
} from './redlock.lock.js';
