/**
 * Base class of every error a lock raises. `lockName` is the name the lock was created with.
 *
 * @example
 * try {
 *   await lock.acquire();
 * } catch (err) {
 *   if (err instanceof LockError) console.error(`lock ${err.lockName} failed`, err);
 * }
 */
export class LockError extends Error {
  constructor(
    message: string,
    readonly lockName: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}
