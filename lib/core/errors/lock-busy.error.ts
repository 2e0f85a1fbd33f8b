import { LockError } from './lock.error.js';

/**
 * The lock is held by another owner and the caller chose not to wait (`@Locked(name, { wait:
 * false })`, `LockService.run(name, fn, { wait: false })`).
 *
 * @example
 * await locks.run('nightly-report', build, { wait: false }).catch((err) => {
 *   if (err instanceof LockBusyError) return; // another replica is on it
 *   throw err;
 * });
 */
export class LockBusyError extends LockError {
  constructor(lockName: string) {
    super(`Lock '${lockName}' is held by another owner`, lockName);
  }
}
