/**
 * The backend-author API of nestjs-sherlock (`nestjs-sherlock/backend`): what a backend
 * implements, the registry it joins, and the helpers the built-in backends use.
 * See docs/extending.md, "Writing a backend". Every export is named here on purpose.
 */
export type {
  LockBackend,
  BackendCapabilities,
  ExpiryLimits,
  LockTarget,
  AttemptOutcome,
  HandOff,
  PushedGrant,
  ClientClass,
  SemaphoreBackend,
  SemaphoreTarget,
  PingDetails,
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
export {
  backends,
  BackendDefinition,
  type Backends,
  type BackendRegistration,
  type BackendDeclaration,
  type LockClass,
} from './core/registry.js';
export type { BackendName, SherlockBackends } from './core/backend-names.js';
export {
  BaseLock,
  type BaseLockOptions,
  type AcquireResult,
  type AcquireOptions,
  type DistributedLock,
} from './core/base-lock.js';
export type { LockManager, LockManagerOptions, ShutdownReport } from './core/manager.js';
export type { BackendHealth } from './core/health.js';
export type { MultiLock } from './core/multi-lock.js';
export type { Semaphore, SemaphoreOptions } from './core/semaphore.js';
export type { ReadWriteLock, ReadWriteSide } from './core/read-write-lock.js';
export type {
  LeaderElection,
  LeaderElectionOptions,
  LeaderElectionEvents,
  LeaderInfo,
  Leadership,
  LeadershipEndedEvent,
  LeaderMetadataValue,
} from './core/leader-election.js';
export type { LockOptions, ResolvedLockOptions } from './core/options.js';
export type {
  LockEvent,
  LockEventType,
  LockEventMap,
  LockEventListener,
  LockEventBase,
  LockWaitingEvent,
  LockAcquiredEvent,
  LockBusyEvent,
  LockTimeoutEvent,
  LockExtendedEvent,
  LockExtendFailedEvent,
  LockReleasedEvent,
  LockLostEvent,
} from './core/events.js';
export type {
  LockInfo,
  LockHolder,
  ListOptions,
  LockForceReleasedEvent,
} from './core/inspection.js';
export {
  parseConnection,
  type ConnectionSettings,
  type ParsedConnection,
} from './core/connection.js';
export { loadDriver } from './core/driver.js';
export { sleepBeforeNextAttempt, FALLBACK_POLL, type WaitFacts } from './core/wait-session.js';
export type {
  LockError,
  LockLostError,
  LockLostReason,
  LockTimeoutError,
} from './core/errors/index.js';
