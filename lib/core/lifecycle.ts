import type { BaseLock } from './base-lock.js';
import { defaultManager, type ShutdownReport } from './manager.js';

export type { ShutdownReport };

/**
 * The locks of the default manager held right now (acquired and not yet released): those made
 * with `new Lock()` or a lock class without a manager. A `LockManager` lists its own: `held()`.
 */
export function heldLocks(): readonly BaseLock[] {
  return defaultManager().held();
}

/**
 * Releases every lock of the default manager still held (best effort), then closes every client
 * the default manager created itself (the shared default clients), so the process can exit.
 * Clients you passed in are left open. Locks used after `shutdown()` create a fresh default client
 * when they need one. A `LockManager` is closed with `close()`.
 *
 * @example
 * process.once('SIGTERM', () => void shutdown().then(() => process.exit(0)));
 */
export function shutdown(): Promise<ShutdownReport> {
  return defaultManager().close();
}
