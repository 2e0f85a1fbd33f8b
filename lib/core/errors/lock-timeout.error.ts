import { messages } from '../messages.js';
import { LockError } from './lock.error.js';

/**
 * A blocking `acquire()` gave up after `timeout` milliseconds. When the last attempt failed because
 * the server could not be reached, that driver error is the `cause`. `retryAfter` (ms) says when
 * the lock should be free at the latest if its holder never releases it: the holder's remaining
 * time to live as the server last reported it, else the lock's `expire`; `undefined` when neither
 * is known (a lock without expiry).
 *
 * @example
 * await lock.acquire().catch((err) => {
 *   if (err instanceof LockTimeoutError) return false;
 *   throw err;
 * });
 */
export class LockTimeoutError extends LockError {
  readonly retryAfter: number | undefined;

  constructor(
    lockName: string,
    readonly timeout: number,
    options: { cause?: unknown; retryAfter?: number | undefined } = {},
  ) {
    const { retryAfter, ...rest } = options;
    super(messages.timeout(lockName, timeout), lockName, 'cause' in rest ? rest : undefined);
    this.retryAfter = retryAfter;
  }
}
