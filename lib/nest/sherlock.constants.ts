import { LockService } from './lock.service.js';

/** The name of the unnamed registration (`SherlockModule.forRoot()` without `name`). */
export const DEFAULT_REGISTRATION = 'default';

/** Metadata key under which `@Locked()` records its arguments on the method. */
export const LOCKED_METADATA = 'sherlock:locked';

/**
 * The hidden property under which Nest injects a registration's `LockService` into the instances
 * of a class with `@Locked` methods.
 */
export function lockServiceProperty(registration: string): symbol {
  return Symbol.for(`nestjs-sherlock:lock-service:${registration}`);
}

/**
 * The injection token of a registration's `LockService`: the `LockService` class itself for the
 * unnamed one, a string for named ones.
 *
 * @example
 * { provide: Reports, useFactory: (locks: LockService) => new Reports(locks), inject: [getLockServiceToken('audit')] }
 */
export function getLockServiceToken(name?: string): string | typeof LockService {
  return name === undefined || name === DEFAULT_REGISTRATION
    ? LockService
    : `SherlockLockService:${name}`;
}

/** The injection token of a registration's raw module options. */
export function getSherlockOptionsToken(name?: string): string {
  return `SherlockModuleOptions:${name ?? DEFAULT_REGISTRATION}`;
}
