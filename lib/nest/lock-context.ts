import { AsyncLocalStorage } from 'node:async_hooks';
import type { BaseLock, MultiLock } from '../sherlock.js';

/** What the current async call chain knows about locks. */
export interface LockContext {
  /** Locks held by this call chain, by `registration id\0key`: re-entered instead of re-acquired. */
  readonly held: ReadonlyMap<string, BaseLock>;
  /** The multi-lock of the innermost `@Locked` / `run` with several names, if any. */
  readonly multiLock?: MultiLock;
  /** Aborts when the request this chain serves is gone (set by LockInterceptor). */
  readonly signal?: AbortSignal;
}

export const lockContext = new AsyncLocalStorage<LockContext>();

/**
 * The lock held by the innermost `@Locked` method (or `LockService.run`) of the current call, or
 * `undefined` outside one. Under a `@Locked` with several names it is one of them (the last in
 * the canonical order): use `currentMultiLock()` for the whole set.
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

/**
 * The multi-lock held by the innermost `@Locked` method (or `LockService.run`) with several
 * names in the current call, or `undefined` outside one: its `signal` aborts when any of the
 * locks is lost, `fencingTokens` has each one's token. Names an enclosing call already held are
 * part of it (re-entered, not taken again).
 *
 * @example
 * @Locked((from: string, to: string) => [`account:${from}`, `account:${to}`])
 * async transfer(from: string, to: string, amount: number) {
 *   const { signal, fencingTokens } = currentMultiLock()!;
 * }
 */
export function currentMultiLock(): MultiLock | undefined {
  return lockContext.getStore()?.multiLock;
}
