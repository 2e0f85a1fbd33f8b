import { messages } from '../messages.js';
import { LockError } from './lock.error.js';

/**
 * The backend failed or did not answer within `operationTimeout`: the operation's outcome is
 * unknown to the caller, and the driver's error is the `cause`. A lock is never reported as
 * acquired when this is thrown. A blocking `acquire()` ends with it (not `LockTimeoutError`) when
 * its `timeout` runs out and the server never answered, or its last attempts all failed. The
 * Nest module answers it with 503 Service Unavailable (code `LOCK_BACKEND_UNAVAILABLE`).
 *
 * @example
 * try {
 *   await lock.acquire(false);
 * } catch (err) {
 *   if (err instanceof LockBackendError) logger.warn(`lock server down: ${String(err.cause)}`);
 * }
 */
export class LockBackendError extends LockError {
  constructor(
    lockName: string,
    readonly operation:
      'acquire' | 'release' | 'locked' | 'extend' | 'count' | 'inspect' | 'list' | 'forceRelease',
    options: { cause: unknown },
  ) {
    super(messages.backendError(lockName, operation, options.cause), lockName, options);
  }
}
