/**
 * The framework-free core of nestjs-sherlock (also importable as `nestjs-sherlock/core`):
 * managers, configuration, locks, backends and errors. Nothing here imports `@nestjs/*`.
 * Every export is named here on purpose (test/package/exports.spec.ts keeps the list).
 */
export {
  LockError,
  LockTimeoutError,
  LockNotHeldError,
  LockReleaseError,
  LockBackendError,
  LockAbortedError,
  LockBusyError,
  LockLostError,
  DriverMissingError,
  MultiLockError,
  type MultiLockFailure,
  UnsupportedFeatureError,
  type LockFeature,
  type LockLostReason,
  type LockReleaseReason,
} from './core/errors/index.js';
export {
  DEFAULT_LOCK_OPTIONS,
  type LockOptions,
  type ResolvedLockOptions,
} from './core/options.js';
export { type ConnectionSettings } from './core/connection.js';
export { LockManager, type LockManagerOptions, type ShutdownReport } from './core/manager.js';
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
  type BackendDeclaration,
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
export type {
  BackendCapabilities,
  ExpiryLimits,
  LockBackend,
  LockTarget,
  AttemptOutcome,
  HandOff,
  SemaphoreBackend,
  SemaphoreTarget,
  ElectionBackend,
  LeaderRecord,
} from './core/backend.js';
export { Lock } from './core/lock.js';
export { MultiLock } from './core/multi-lock.js';
export { Semaphore, type SemaphoreOptions } from './core/semaphore.js';
export {
  LeaderElection,
  DEFAULT_LEADER_EXPIRE,
  type LeaderElectionOptions,
  type LeaderElectionEvents,
  type LeaderInfo,
  type Leadership,
  type LeadershipEndedEvent,
  type LeaderMetadataValue,
} from './core/leader-election.js';
export { lockEvents, type LockEvents, type LockLostEvent } from './core/events.js';
export { shutdown, heldLocks } from './core/lifecycle.js';
export {
  RedisLock,
  MemcachedLock,
  MCLock,
  EtcdLock,
  MemoryLock,
  MemoryStore,
  type MemoryTicket,
  RedlockLock,
  RedisQuorum,
  type RedisLockOptions,
  type MemcachedLockOptions,
  type EtcdLockOptions,
  type MemoryLockOptions,
  type RedlockLockOptions,
  type RedisQuorumOptions,
  ThreadLock,
  ThreadLockTable,
  ClusterLock,
  ClusterLockClient,
  ClusterLockHub,
  type ThreadLockOptions,
  type ThreadLockState,
  type ThreadLockTableOptions,
  type ClusterLockOptions,
  type LockHubChild,
} from './backends/index.js';
