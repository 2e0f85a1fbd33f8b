import { messages } from '../messages.js';
import { LockError } from './lock.error.js';

/**
 * Why a held lock is known to be lost:
 * - `'taken'`: a renewal found that the server no longer holds it for this owner;
 * - `'unconfirmed'`: the server could not be reached to renew it before it would expire, so
 *   another owner may get it from now on.
 */
export type LockLostReason = 'taken' | 'unconfirmed';

/**
 * The reason of a held lock's `signal` when the lock is known lost. Work guarded by the lock
 * should stop: its writes are no longer protected (fence them with `lock.fencingToken`).
 *
 * @example
 * await lock.using(async ({ signal }) => {
 *   for (const batch of batches) {
 *     signal.throwIfAborted(); // throws LockLostError once the lock is lost
 *     await write(batch);
 *   }
 * });
 */
export class LockLostError extends LockError {
  constructor(
    lockName: string,
    readonly reason: LockLostReason,
    options?: { cause?: unknown },
  ) {
    super(messages.lost(lockName, reason), lockName, options);
  }
}
