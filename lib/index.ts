/**
 * nestjs-sherlock: distributed locks for TypeScript and NestJS. The framework-free core (locks,
 * managers, backends, configuration, errors) is also importable without Nest as
 * `nestjs-sherlock/core`, and the backend-author API as `nestjs-sherlock/backend`. Every export
 * is named on purpose (test/package/exports.spec.ts keeps the list).
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
} from './sherlock.js';
export { DEFAULT_LOCK_OPTIONS, type LockOptions, type ResolvedLockOptions } from './sherlock.js';
export { type ConnectionSettings } from './sherlock.js';
export { LockManager, type LockManagerOptions, type ShutdownReport } from './sherlock.js';
export {
  configure,
  getConfiguration,
  resetConfiguration,
  type ConfigureOptions,
  type SherlockConfiguration,
} from './sherlock.js';
export {
  backends,
  BackendDefinition,
  type Backends,
  type BackendRegistration,
  type BackendDeclaration,
  type ClientClass,
  type LockClass,
} from './sherlock.js';
export {
  BaseLock,
  type BaseLockOptions,
  type AcquireOptions,
  type AcquireResult,
  type DistributedLock,
} from './sherlock.js';
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
} from './sherlock.js';
export { Lock, MultiLock } from './sherlock.js';
export { Semaphore, type SemaphoreOptions } from './sherlock.js';
export {
  LeaderElection,
  DEFAULT_LEADER_EXPIRE,
  type LeaderElectionOptions,
  type LeaderElectionEvents,
  type LeaderInfo,
  type Leadership,
  type LeadershipEndedEvent,
  type LeaderMetadataValue,
} from './sherlock.js';
export { lockEvents, type LockEvents, type LockLostEvent } from './sherlock.js';
export { shutdown, heldLocks } from './sherlock.js';
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
} from './sherlock.js';
export {
  SherlockModule,
  LockService,
  type LockServiceAcquireOptions,
  Locked,
  type LockName,
  LockInterceptor,
  type ClosableResponse,
  InjectLockService,
  currentLock,
  currentMultiLock,
  getLockServiceToken,
  LOCKED_METADATA,
  LeaderElectionModule,
  type LeaderElectionModuleOptions,
  LeaderService,
  LeaderOnly,
  InjectLeaderService,
  getLeaderServiceToken,
  LEADER_ONLY_METADATA,
  type LockedOptions,
  type LockedDecoratorOptions,
  type OnBusy,
  type SherlockModuleOptions,
  type SherlockModuleAsyncOptions,
  type SherlockModuleRegistration,
  type SherlockOptionsFactory,
} from './nest/index.js';
