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
export type { BackendName, SherlockBackends } from './core/backend-names.js';
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
  PushedGrant,
  SemaphoreBackend,
  SemaphoreTarget,
  ReadWriteBackend,
  ReadWriteTarget,
  ReadWriteMode,
  ReadWriteState,
  InspectionBackend,
  StoredLock,
  ListedLock,
  ListTarget,
  ElectionBackend,
  LeaderRecord,
} from './core/backend.js';
export { Lock } from './core/lock.js';
export { MultiLock } from './core/multi-lock.js';
export { Semaphore, type SemaphoreOptions } from './core/semaphore.js';
export { ReadWriteLock, ReadWriteSide } from './core/read-write-lock.js';
export {
  lockEvents,
  LOCK_EVENT_TYPES,
  LOCK_CHANNELS,
  type LockEvents,
  type LockEvent,
  type LockEventType,
  type LockEventMap,
  type LockEventListener,
  type LockEventBase,
  type LockWaitingEvent,
  type LockAcquiredEvent,
  type LockBusyEvent,
  type LockTimeoutEvent,
  type LockExtendedEvent,
  type LockExtendFailedEvent,
  type LockReleasedEvent,
  type LockLostEvent,
} from './core/events.js';
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
export { shutdown, heldLocks } from './core/lifecycle.js';
export { type BackendHealth } from './core/health.js';
export type { PingDetails } from './core/backend.js';
export {
  instrumentOpenTelemetry,
  OTEL_NAMES,
  type OpenTelemetryOptions,
  type OpenTelemetryInstrumentation,
} from './core/opentelemetry.js';
export type {
  LockInfo,
  LockHolder,
  ListOptions,
  LockForceReleasedEvent,
} from './core/inspection.js';
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
  waitForReplicas,
  ReplicaAckError,
  type WaitForReplicas,
  type SentinelAddress,
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
  PostgresLock,
  type PostgresLockOptions,
  type PgPoolLike,
  ZooKeeperLock,
  ZooKeeperClient,
  type ZooKeeperLockOptions,
  type ZooKeeperClientOptions,
} from './backends/index.js';
export {
  createTestingLockManager,
  type LockControls,
  type TestingLockManager,
  type TestingLockManagerOptions,
} from './testing/double.js';
