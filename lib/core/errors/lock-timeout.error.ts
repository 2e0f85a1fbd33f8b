import { LockError } from './lock.error.js';

/**
 * A blocking `acquire()` gave up after `timeout` milliseconds. When the last attempt failed because
 * the server could not be reached, that driver error is the `cause`.
 *
 * @example
 * await lock.acquire().catch((err) => {
 *   if (err instanceof LockTimeoutError) return false;
 *   throw err;
 * });
 */
export class LockTimeoutError extends LockError {
  constructor(
    lockName: string,
    readonly timeout: number,
    options?: { cause?: unknown },
  ) {
    super(
      `Timeout elapsed after ${timeout} ms while trying to acquire lock '${lockName}'`,
      lockName,
      options,
    );
  }
}
