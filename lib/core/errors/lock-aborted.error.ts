import { messages } from '../messages.js';
import { LockError } from './lock.error.js';

/**
 * A blocking `acquire({ signal })` was cancelled through its `AbortSignal` before the lock was
 * granted. The signal's `reason` is the `cause`. No lock is held afterwards.
 *
 * @example
 * const controller = new AbortController();
 * setTimeout(() => controller.abort(), 1_000);
 * await lock.acquire({ signal: controller.signal }); // rejects with LockAbortedError after 1 s
 */
export class LockAbortedError extends LockError {
  constructor(lockName: string, options: { cause: unknown }) {
    super(messages.aborted(lockName), lockName, options);
  }
}
