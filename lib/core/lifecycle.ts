import { registeredBackends } from './registry.js';

/** What `shutdown()` needs of a held lock. */
export interface Releasable {
  readonly name: string;
  release(): Promise<void>;
}

const held = new Set<Releasable>();

/** @internal called by BaseLock when it acquires / releases. */
export function trackHeld(lock: Releasable, isHeld: boolean): void {
  if (isHeld) held.add(lock);
  else held.delete(lock);
}

/** The locks this process holds right now (acquired and not yet released). */
export function heldLocks(): readonly Releasable[] {
  return [...held];
}

/** What `shutdown()` did. */
export interface ShutdownReport {
  /** Names of the locks that were still held and were released. */
  released: string[];
  /** Locks that were still held but could not be released (they expire on their own). */
  failed: { name: string; error: unknown }[];
}

/**
 * Releases every lock this process still holds (best effort), then closes every client that this
 * library created itself (the shared default clients), so the process can exit. Clients you passed
 * in are left open. Locks used after `shutdown()` create a fresh default client when they need one.
 *
 * @example
 * process.once('SIGTERM', () => void shutdown().then(() => process.exit(0)));
 */
export async function shutdown(): Promise<ShutdownReport> {
  const locks = [...held];
  const results = await Promise.allSettled(locks.map((lock) => lock.release()));
  const report: ShutdownReport = { released: [], failed: [] };
  results.forEach((result, i) => {
    const lock = locks[i];
    if (!lock) return;
    held.delete(lock);
    if (result.status === 'fulfilled') report.released.push(lock.name);
    else report.failed.push({ name: lock.name, error: result.reason });
  });
  await Promise.allSettled(registeredBackends().map((backend) => backend.closeDefaultClient()));
  return report;
}
