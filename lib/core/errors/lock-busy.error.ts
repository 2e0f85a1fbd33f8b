import { messages } from '../messages.js';
import { LockError } from './lock.error.js';

/**
 * The lock is held by another owner and the caller chose not to wait (`@Locked(name, { wait:
 * false })`, `LockService.run(name, fn, { wait: false })`). `retryAfter` (ms), as on
 * `LockTimeoutError`: when the lock should be free at the latest, if known. For a `MultiLock`,
 * `lockName` is the multi-lock's name and `member` the lock that was busy (none is held).
 *
 * @example
 * await locks.run('nightly-report', build, { wait: false }).catch((err) => {
 *   if (err instanceof LockBusyError) return; // another replica is on it
 *   throw err;
 * });
 */
export class LockBusyError extends LockError {
  readonly retryAfter: number | undefined;
  /** For a multi-lock: the member that was busy (`undefined` for a single lock). */
  readonly member: string | undefined;

  constructor(
    lockName: string,
    options: { retryAfter?: number | undefined; member?: string | undefined } = {},
  ) {
    super(
      options.member === undefined
        ? messages.busy(lockName)
        : messages.busyAll(lockName, options.member),
      lockName,
    );
    this.retryAfter = options.retryAfter;
    this.member = options.member;
  }
}
