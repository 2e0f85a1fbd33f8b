import { messages } from '../messages.js';
import { LockError } from './lock.error.js';

/** One member of a multi-lock that a `release()` or `extend()` could not do, and why. */
export interface MultiLockFailure {
  /** The member's lock name. */
  readonly name: string;
  /**
   * What that member's own `release()` / `extend()` rejected with: a `LockNotHeldError`
   * (`'not-owned'`: it expired or was taken), a `LockBackendError` (the server failed: on
   * release, the member stays held by the multi-lock, so calling `release()` again retries it).
   */
  readonly error: Error;
}

/**
 * A `MultiLock`'s `release()` or `extend()` failed for some of its members; it was still done for
 * all the others (`succeeded`). `failed` says which members failed and why; `cause` is the first
 * of those errors.
 *
 * @example
 * try {
 *   await accounts.release();
 * } catch (err) {
 *   if (err instanceof MultiLockError) for (const { name, error } of err.failed) log(name, error);
 * }
 */
export class MultiLockError extends LockError {
  constructor(
    lockName: string,
    readonly operation: 'release' | 'extend',
    readonly failed: readonly MultiLockFailure[],
    readonly succeeded: readonly string[],
  ) {
    super(
      messages.multiFailed(lockName, operation, failed, failed.length + succeeded.length),
      lockName,
      { cause: failed[0]?.error },
    );
  }
}
