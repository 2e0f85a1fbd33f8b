import { LockError } from './lock.error.js';

/**
 * Why a release (or an extension) was refused:
 * - `'not-acquired'`: this lock object never acquired the lock (or already released it);
 * - `'not-owned'`: it did, but the server no longer holds it for this owner: it expired, or was
 *   taken by another owner after it expired.
 */
export type LockReleaseReason = 'not-acquired' | 'not-owned';

/**
 * `release()` was called on a lock that this object does not hold.
 *
 * @example
 * try {
 *   await lock.release();
 * } catch (err) {
 *   if (err instanceof LockReleaseError && err.reason === 'not-owned') {
 *     // the lock expired while we worked: whatever we did was not protected
 *   }
 * }
 */
export class LockReleaseError extends LockError {
  constructor(
    lockName: string,
    readonly reason: LockReleaseReason,
  ) {
    super(
      reason === 'not-acquired'
        ? `Cannot release lock '${lockName}': it was never acquired by this lock object (or was already released)`
        : `Cannot release lock '${lockName}': it is no longer owned by this lock object (it expired, or another owner took it)`,
      lockName,
    );
  }
}
