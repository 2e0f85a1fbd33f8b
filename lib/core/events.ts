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

type LostListener = (event: LockLostEvent) => void;

/** The events of every lock in this process (an `EventEmitter`). */
export interface LockEvents {
  on(event: 'lost', listener: LostListener): this;
  once(event: 'lost', listener: LostListener): this;
  off(event: 'lost', listener: LostListener): this;
  emit(event: 'lost', payload: LockLostEvent): boolean;
}

/**
 * Events of every lock in this process. The Nest module logs them; without Nest, listen here.
 *
 * @example
 * lockEvents.on('lost', ({ name, error }) => logger.error(`lock ${name} lost: ${error.reason}`));
 */
export const lockEvents: LockEvents = new EventEmitter();
