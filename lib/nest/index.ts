import 'reflect-metadata';

export { SherlockModule } from './sherlock.module.js';
export { LockService, type LockServiceAcquireOptions } from './lock.service.js';
export { Locked, type LockName } from './locked.decorator.js';
export { LockInterceptor, type ClosableResponse } from './lock.interceptor.js';
export { InjectLockService } from './inject-lock-service.decorator.js';
export { currentLock, currentMultiLock } from './lock-context.js';
export { getLockServiceToken, LOCKED_METADATA } from './sherlock.constants.js';
export { LeaderElectionModule, type LeaderElectionModuleOptions } from './leader.module.js';
export { LeaderService } from './leader.service.js';
export { LeaderOnly, InjectLeaderService } from './leader-only.decorator.js';
export { getLeaderServiceToken, LEADER_ONLY_METADATA } from './leader.constants.js';
export type {
  LockedOptions,
  LockedDecoratorOptions,
  OnBusy,
  SherlockModuleOptions,
  SherlockModuleAsyncOptions,
  SherlockModuleRegistration,
  SherlockOptionsFactory,
} from './sherlock.interfaces.js';
