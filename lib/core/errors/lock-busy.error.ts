import { messages } from '../messages.js';
import { LockError } from './lock.error.js';

/**
 * The lock is held by another owner and the caller chose not to wait (`@Locked(name, { wait:
 * false })`, `LockService.run(name, fn, { wait: false })`). `retryAfter` (ms), as on
 * `LockTimeoutError`: when the lock should be free at the latest, if known.
 *
 * @example
 * await locks.run('nightly-report', build, { wait: false }).catch((err) => {
 *   if (err instanceof LockBusyError) return; // another replica is on it
 *   throw err;
 * });
 */
export class LockBusyError extends LockError {
  readonly retryAfter: number | undefined;

  constructor(lockName: string, options: { retryAfter?: number | undefined } = {}) {
    super(messages.busy(lockName), lockName);
    this.retryAfter = options.retryAfter;
  }
}
