/**
 * The framework-free core of nestjs-sherlock (also importable as `nestjs-sherlock/core`):
 * configuration, locks, backends and errors. Nothing here imports `@nestjs/*`.
 */
export {
  LockError,
  LockTimeoutError,
  LockReleaseError,
  LockBackendError,
  LockAbortedError,
  LockBusyError,
  LockLostError,
  type LockLostReason,
  DriverMissingError,
  type LockReleaseReason,
} from './core/errors/index.js';
export {
  DEFAULT_LOCK_OPTIONS,
  type ConnectionSettings,
  type LockOptions,
  type ResolvedLockOptions,
} from './core/options.js';
export {
  configure,
  getConfiguration,
  resetConfiguration,
  type ConfigureOptions,
  type SherlockConfiguration,
} from './core/configuration.js';
export {
  backends,
  BackendDefinition,
  type Backends,
  type BackendRegistration,
  type ClientClass,
  type LockClass,
} from './core/registry.js';
export {
  BaseLock,
  type BaseLockOptions,
  type AcquireOptions,
  type AcquireResult,
  type DistributedLock,
} from './core/base-lock.js';
export { Lock } from './core/lock.js';
export { lockEvents, type LockEvents, type LockLostEvent } from './core/events.js';
export { shutdown, heldLocks, type ShutdownReport } from './core/lifecycle.js';
export {
  RedisLock,
  MemcachedLock,
  MCLock,
  EtcdLock,
  MemoryLock,
  MemoryStore,
  RedlockLock,
  RedisQuorum,
  type RedisLockOptions,
  type MemcachedLockOptions,
  type EtcdLockOptions,
  type MemoryLockOptions,
  type RedlockLockOptions,
  type RedisQuorumOptions,
} from './backends/index.js';
