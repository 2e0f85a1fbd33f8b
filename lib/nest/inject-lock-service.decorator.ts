import { Inject } from '@nestjs/common';
import { getLockServiceToken } from './sherlock.constants.js';

/**
 * Injects the `LockService` of a named `SherlockModule` registration (or the unnamed one).
 *
 * @example
 * constructor(@InjectLockService('audit') private readonly auditLocks: LockService) {}
 */
export function InjectLockService(name?: string): ParameterDecorator & PropertyDecorator {
  return Inject(getLockServiceToken(name));
}
