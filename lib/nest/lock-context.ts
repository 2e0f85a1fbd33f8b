import { AsyncLocalStorage } from 'node:async_hooks';
import type { BaseLock } from '../sherlock.js';

/** What the current async call chain knows about locks. */
export interface LockContext {
  /** Locks held by this call chain, by `registration id\0key`: re-entered instead of re-acquired. */
  readonly held: ReadonlyMap<string, BaseLock>;
  /** Aborts when the request this chain serves is gone (set by LockInterceptor). */
  readonly signal?: AbortSignal;
}

export const lockContext = new AsyncLocalStorage<LockContext>();

/**
 * The lock held by the innermost `@Locked` method (or `LockService.run`) of the current call, or
 * `undefined` outside one.
 *
 * @example
 * @Locked('payouts')
 * async payout() {
 *   const lock = currentLock(); // the held lock: lock.name, lock.key, ...
 * }
 */
export function currentLock(): BaseLock | undefined {
  const held = lockContext.getStore()?.held;
  if (!held || held.size === 0) return undefined;
  return [...held.values()].at(-1);
}
