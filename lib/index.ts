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
export type { BackendName, SherlockBackends } from './sherlock.js';
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
  ReadWriteBackend,
  ReadWriteTarget,
  ReadWriteMode,
  ReadWriteState,
  InspectionBackend,
  StoredLock,
  ListedLock,
  ListTarget,
} from './sherlock.js';
export { Lock, MultiLock } from './sherlock.js';
export { Semaphore, type SemaphoreOptions } from './sherlock.js';
export { ReadWriteLock, ReadWriteSide } from './sherlock.js';
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
} from './sherlock.js';
export { shutdown, heldLocks } from './sherlock.js';
export { type BackendHealth, type PingDetails } from './sherlock.js';
export {
  instrumentOpenTelemetry,
  OTEL_NAMES,
  type OpenTelemetryOptions,
  type OpenTelemetryInstrumentation,
} from './sherlock.js';
export type { LockInfo, LockHolder, ListOptions, LockForceReleasedEvent } from './sherlock.js';
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
  PostgresLock,
  type PostgresLockOptions,
  type PgPoolLike,
} from './sherlock.js';
export {
  SherlockModule,
  LockService,
  type LockServiceAcquireOptions,
  Locked,
  type LockName,
  type LockedDecorator,
  type LockedNameMismatch,
  type LockedSkipNeedsUndefined,
  type LockedSkips,
  type LockedTarget,
  LockInterceptor,
  type ClosableResponse,
  LockErrorInterceptor,
  describeLockError,
  LockGraphQLError,
  type LockErrorCode,
  type LockErrorContext,
  type LockErrorDescription,
  type LockErrorMapper,
  type LockErrorMapping,
  type LockErrorMappingOptions,
  InjectLockService,
  currentLock,
  currentMultiLock,
  SherlockHealthIndicator,
  type SherlockHealthOptions,
  type SherlockHealthResult,
  SHERLOCK_EVENTS,
  describeLockEvent,
  type SherlockEmittedEvent,
  getLockServiceToken,
  LOCKED_METADATA,
  type LockedOptions,
  type LockedDecoratorOptions,
  type LockedPrimitiveOptions,
  type OnBusy,
  type SherlockModuleOptions,
  type SherlockModuleAsyncOptions,
  type SherlockModuleRegistration,
  type SherlockOptionsFactory,
} from './nest/index.js';
export {
  createTestingLockManager,
  type LockControls,
  type TestingLockManager,
  type TestingLockManagerOptions,
} from './sherlock.js';
export {
  createTestingLockService,
  type TestingLockService,
  type TestingLockServiceOptions,
} from './nest/testing.js';
