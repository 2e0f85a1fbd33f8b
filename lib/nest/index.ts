import 'reflect-metadata';

export { SherlockModule } from './sherlock.module.js';
export { LockService, type LockServiceAcquireOptions } from './lock.service.js';
export {
  Locked,
  type LockName,
  type LockedDecorator,
  type LockedNameMismatch,
  type LockedSkipNeedsUndefined,
  type LockedSkips,
  type LockedTarget,
} from './locked.decorator.js';
export { LockInterceptor, type ClosableResponse } from './lock.interceptor.js';
export { LockErrorInterceptor } from './lock-error.interceptor.js';
export {
  describeLockError,
  LockGraphQLError,
  type LockErrorCode,
  type LockErrorContext,
  type LockErrorDescription,
  type LockErrorMapper,
  type LockErrorMapping,
  type LockErrorMappingOptions,
} from './lock-error-mapping.js';
export { InjectLockService } from './inject-lock-service.decorator.js';
export { currentLock, currentMultiLock } from './lock-context.js';
export {
  SherlockHealthIndicator,
  type SherlockHealthOptions,
  type SherlockHealthResult,
} from './sherlock.health.js';
export {
  SHERLOCK_EVENTS,
  describeLockEvent,
  type SherlockEmittedEvent,
} from './sherlock.observer.js';
export { getLockServiceToken, LOCKED_METADATA } from './sherlock.constants.js';
export { LeaderElectionModule, type LeaderElectionModuleOptions } from './leader.module.js';
export { LeaderService } from './leader.service.js';
export { LeaderOnly, InjectLeaderService } from './leader-only.decorator.js';
export { getLeaderServiceToken, LEADER_ONLY_METADATA } from './leader.constants.js';
export type {
  LockedOptions,
  LockedDecoratorOptions,
  LockedPrimitiveOptions,
  OnBusy,
  SherlockModuleOptions,
  SherlockModuleAsyncOptions,
  SherlockModuleRegistration,
  SherlockOptionsFactory,
} from './sherlock.interfaces.js';
