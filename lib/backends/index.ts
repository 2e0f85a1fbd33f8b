export { RedisLock, REDIS, redisBackend, type RedisLockOptions } from './redis/index.js';
export {
  MemcachedLock,
  MCLock,
  MEMCACHED,
  memcachedBackend,
  type MemcachedLockOptions,
} from './memcached/index.js';
export { EtcdLock, ETCD, etcdBackend, type EtcdLockOptions } from './etcd/index.js';
export {
  MemoryLock,
  MemoryStore,
  MEMORY,
  memoryBackend,
  type MemoryLockOptions,
} from './memory/index.js';
export {
  RedlockLock,
  RedisQuorum,
  REDLOCK,
  redlockBackend,
  type RedlockLockOptions,
  type RedisQuorumOptions,
} from './redlock/index.js';
