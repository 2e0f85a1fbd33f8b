import { messages } from '../messages.js';
import { LockError } from './lock.error.js';

/**
 * A blocking `acquire()` gave up after `timeout` milliseconds while the lock was held by another
 * owner. When the very last attempt failed (one glitch after "busy" answers), that driver error
 * is the `cause`; a server that never answered, or whose last attempts all failed, ends the wait
 * with `LockBackendError` instead. `retryAfter` (ms) says when the lock should be free at the
 * latest if its holder never releases it: the holder's remaining time to live as the server last
 * reported it; `undefined` when unknown (a backend that does not report it, a lock without
 * expiry).
 *
 * For a `MultiLock` (several locks at once), `lockName` is the multi-lock's name (its member
 * names), `member` the name of the lock that was still held by another owner when the timeout ran
 * out, and `cause` that member's own `LockTimeoutError`; none of the locks is held afterwards.
 *
 * @example
 * await lock.acquire().catch((err) => {
 *   if (err instanceof LockTimeoutError) return false;
 *   throw err;
 * });
 */
export class LockTimeoutError extends LockError {
  readonly retryAfter: number | undefined;
  /** For a multi-lock: the member that was still busy (`undefined` for a single lock). */
  readonly member: string | undefined;

  constructor(
    lockName: string,
    readonly timeout: number,
    options: { cause?: unknown; retryAfter?: number | undefined; member?: string | undefined } = {},
  ) {
    const { retryAfter, member, ...rest } = options;
    super(
      member === undefined
        ? messages.timeout(lockName, timeout)
        : messages.timeoutAll(lockName, timeout, member),
      lockName,
      'cause' in rest ? rest : undefined,
    );
    this.retryAfter = retryAfter;
    this.member = member;
  }
}
