import { EventEmitter } from 'node:events';
import type { LockLostError } from './errors/lock-lost.error.js';

/** Emitted as `'lost'` when a held lock is known lost (its `signal` aborts at the same time). */
export interface LockLostEvent {
  /** The lock object whose holding was lost. */
  readonly lock: object;
  readonly name: string;
  readonly key: string;
  readonly error: LockLostError;
}

/** Lock events (an `EventEmitter`): `'lost'`. */
export interface LockEvents {
  on(event: 'lost', listener: (event: LockLostEvent) => void): this;
  once(event: 'lost', listener: (event: LockLostEvent) => void): this;
  off(event: 'lost', listener: (event: LockLostEvent) => void): this;
  emit(event: 'lost', payload: LockLostEvent): boolean;
}

/**
 * The events of the default manager's locks: those made with `new Lock()` or a lock class
 * (`new RedisLock()`, ...) after `configure()`. A `LockManager` (each Nest registration has one)
 * has its own: `manager.on('lost', ...)`.
 *
 * @example
 * lockEvents.on('lost', ({ name, error }) => logger.error(`lock ${name} lost: ${error.reason}`));
 */
export const lockEvents: LockEvents = new EventEmitter();
