import { messages } from '../messages.js';
import { LockError } from './lock.error.js';

/**
 * Why you do not hold a lock you tried to release or extend:
 * - `'not-acquired'`: this lock object never acquired the lock (or already released it);
 * - `'not-owned'`: it did, but the server no longer holds it for this owner: it expired, or was
 *   taken by another owner after it expired.
 */
export type LockReleaseReason = 'not-acquired' | 'not-owned';

/**
 * You do not hold this lock: thrown by `release()` and `extend()` alike. `operation` says which
 * call, `reason` why.
 *
 * @example
 * try {
 *   await lock.release();
 * } catch (err) {
 *   if (err instanceof LockNotHeldError && err.reason === 'not-owned') {
 *     // the lock expired while we worked: whatever we did was not protected
 *   }
 * }
 */
export class LockNotHeldError extends LockError {
  constructor(
    lockName: string,
    readonly reason: LockReleaseReason,
    readonly operation: 'release' | 'extend' = 'release',
  ) {
    super(messages.notHeld(lockName, operation, reason), lockName);
  }
}

/**
 * The name this error had before 1.0, kept so that `instanceof LockReleaseError` and
 * `catch (e: LockReleaseError)` go on working.
 *
 * @deprecated Use `LockNotHeldError`, which it is.
 */
export const LockReleaseError = LockNotHeldError;
/** @deprecated Use `LockNotHeldError`. */
export type LockReleaseError = LockNotHeldError;
