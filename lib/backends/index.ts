export { RedisLock, REDIS, type RedisLockOptions } from './redis/index.js';
export { MemcachedLock, MCLock, MEMCACHED, type MemcachedLockOptions } from './memcached/index.js';
export { EtcdLock, ETCD, type EtcdLockOptions } from './etcd/index.js';
export {
  MemoryLock,
  MemoryStore,
  MEMORY,
  type MemoryLockOptions,
  type MemoryTicket,
} from './memory/index.js';
export {
  RedlockLock,
  RedisQuorum,
  REDLOCK,
  type RedlockLockOptions,
  type RedisQuorumOptions,
} from './redlock/index.js';
export {
  ThreadLock,
  ThreadLockTable,
  THREADS,
  type ThreadLockOptions,
  type ThreadLockState,
  type ThreadLockTableOptions,
} from './threads/index.js';
export {
  ClusterLock,
  ClusterLockClient,
  ClusterLockHub,
  CLUSTER,
  type ClusterLockOptions,
  type LockHubChild,
} from './cluster/index.js';
export {
  PostgresLock,
  POSTGRES,
  type PostgresLockOptions,
  type PgPoolLike,
} from './postgres/index.js';
export {
  ZooKeeperLock,
  ZooKeeperClient,
  ZOOKEEPER,
  type ZooKeeperLockOptions,
  type ZooKeeperClientOptions,
} from './zookeeper/index.js';
