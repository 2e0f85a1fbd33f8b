import { channel } from 'node:diagnostics_channel';

/**
 * What the library uses of a `node:diagnostics_channel` channel (typed here so that the published
 * declarations need no `@types/node`).
 */
interface Channel {
  readonly hasSubscribers: boolean;
  publish(message: unknown): void;
}
import { EventEmitter } from 'node:events';
import type { LockLostError } from './errors/lock-lost.error.js';
import type { LockTimeoutError } from './errors/lock-timeout.error.js';

/**
 * The events of a lock, in the order a holding meets them:
 * - `'waiting'`: a blocking acquire found the lock taken and starts waiting (once per acquire);
 * - `'acquired'`: an acquire was granted;
 * - `'busy'`: a non-blocking acquire found the lock taken (it resolves `false`);
 * - `'timeout'`: a blocking acquire gave up (it rejects with `LockTimeoutError`);
 * - `'extended'` / `'extend-failed'`: an `extend()` (yours, or `autoExtend`'s renewal) succeeded / failed;
 * - `'released'`: `release()` deleted the lock at the server;
 * - `'lost'`: a held lock is known lost (its `signal` aborts at the same time).
 */
export type LockEventType =
  'waiting' | 'acquired' | 'busy' | 'timeout' | 'extended' | 'extend-failed' | 'released' | 'lost';

/** Every event type, in the order of `LockEventType`. */
export const LOCK_EVENT_TYPES: readonly LockEventType[] = Object.freeze([
  'waiting',
  'acquired',
  'busy',
  'timeout',
  'extended',
  'extend-failed',
  'released',
  'lost',
]);

/** What every lock event says. Durations are in milliseconds (`performance.now()` differences). */
export interface LockEventBase<T extends LockEventType = LockEventType> {
  readonly type: T;
  /** The lock object (a `BaseLock`; a `Semaphore` for a semaphore's permit). */
  readonly lock: object;
  /** The name the lock was created with. */
  readonly name: string;
  /** The key on the server (namespace included). */
  readonly key: string;
  /** The backend's name, e.g. `'redis'`. */
  readonly backend: string;
  /** The holding's fencing token, when the backend issues them and the lock is (or was) held. */
  readonly fencingToken: string | undefined;
  /**
   * How long the acquire waited, in ms: so far (`waiting`, `busy`, `timeout`), or the wait of the
   * acquire that got this holding (`acquired` and later events).
   */
  readonly waited: number;
  /** How long the lock has been held, in ms (0 when it is not held: `waiting`, `busy`, `timeout`). */
  readonly held: number;
}

/** A blocking acquire found the lock taken and waits (emitted once per acquire). */
export interface LockWaitingEvent extends LockEventBase<'waiting'> {
  /** The acquire's `timeout` in ms. */
  readonly timeout: number;
  /** The holder's remaining time to live as the server said (-1: no expiry), if it said. */
  readonly holderTtl: number | undefined;
  /** This waiter's place in line (0: next), on backends that queue waiters. */
  readonly position: number | undefined;
}

/** An acquire was granted. */
export interface LockAcquiredEvent extends LockEventBase<'acquired'> {
  /** Whether the acquire was blocking (it may have waited). */
  readonly blocking: boolean;
}

/** A non-blocking acquire found the lock taken. */
export interface LockBusyEvent extends LockEventBase<'busy'> {
  /** When the lock should be free at the latest (ms), if known. */
  readonly retryAfter: number | undefined;
}

/** A blocking acquire ran out of time. */
export interface LockTimeoutEvent extends LockEventBase<'timeout'> {
  /** The error the acquire rejects with. */
  readonly error: LockTimeoutError;
}

/** The held lock's expiry was set to `ttl` ms from now. */
export interface LockExtendedEvent extends LockEventBase<'extended'> {
  readonly ttl: number;
  /** Whether the renewal of `autoExtend` did it (else a call to `extend()`). */
  readonly automatic: boolean;
}

/** An extend of the held lock failed (the lock may still be held: see `lost`). */
export interface LockExtendFailedEvent extends LockEventBase<'extend-failed'> {
  readonly ttl: number;
  readonly automatic: boolean;
  /** Why: a `LockNotHeldError` (another owner has it) or a `LockBackendError` (the server failed). */
  readonly error: unknown;
}

/** The lock was released (deleted at the server by its owner). */
export type LockReleasedEvent = LockEventBase<'released'>;

/** Emitted as `'lost'` when a held lock is known lost (its `signal` aborts at the same time). */
export interface LockLostEvent extends LockEventBase<'lost'> {
  readonly error: LockLostError;
}

/** Each event type and what its listeners get. */
export interface LockEventMap {
  waiting: LockWaitingEvent;
  acquired: LockAcquiredEvent;
  busy: LockBusyEvent;
  timeout: LockTimeoutEvent;
  extended: LockExtendedEvent;
  'extend-failed': LockExtendFailedEvent;
  released: LockReleasedEvent;
  lost: LockLostEvent;
}

/** Any lock event (tell them apart by `type`). */
export type LockEvent = LockEventMap[LockEventType];

/** A listener of one event type. */
export type LockEventListener<E extends LockEventType> = (event: LockEventMap[E]) => void;

/**
 * The `node:diagnostics_channel` names the events are published on, for every manager (APM
 * tools and `instrumentOpenTelemetry()` read them): `nestjs-sherlock:lock:<type>`.
 *
 * @example
 * import { subscribe } from 'node:diagnostics_channel';
 * subscribe(LOCK_CHANNELS.lost, (event) => report(event as LockLostEvent));
 */
export const LOCK_CHANNELS: { readonly [E in LockEventType]: `nestjs-sherlock:lock:${E}` } =
  Object.freeze({
    waiting: 'nestjs-sherlock:lock:waiting',
    acquired: 'nestjs-sherlock:lock:acquired',
    busy: 'nestjs-sherlock:lock:busy',
    timeout: 'nestjs-sherlock:lock:timeout',
    extended: 'nestjs-sherlock:lock:extended',
    'extend-failed': 'nestjs-sherlock:lock:extend-failed',
    released: 'nestjs-sherlock:lock:released',
    lost: 'nestjs-sherlock:lock:lost',
  });

/** @internal the channels, made once. */
export const lockChannels: { readonly [E in LockEventType]: Channel } = Object.freeze(
  Object.fromEntries(
    LOCK_EVENT_TYPES.map((type): [LockEventType, Channel] => [type, channel(LOCK_CHANNELS[type])]),
  ) as { [E in LockEventType]: Channel },
);

/** Lock events (an `EventEmitter`): see `LockEventType`. */
export interface LockEvents {
  on<E extends LockEventType>(event: E, listener: LockEventListener<E>): this;
  once<E extends LockEventType>(event: E, listener: LockEventListener<E>): this;
  off<E extends LockEventType>(event: E, listener: LockEventListener<E>): this;
  emit<E extends LockEventType>(event: E, payload: LockEventMap[E]): boolean;
  listenerCount(event: LockEventType): number;
}

/**
 * The events of the default manager's locks: those made with `new Lock()` or a lock class
 * (`new RedisLock()`, ...) after `configure()`. A `LockManager` (each Nest registration has one)
 * has its own: `manager.on('lost', ...)`. Every manager's events are also published on
 * `node:diagnostics_channel` (`LOCK_CHANNELS`).
 *
 * @example
 * lockEvents.on('lost', ({ name, error }) => logger.error(`lock ${name} lost: ${error.reason}`));
 */
export const lockEvents: LockEvents = new EventEmitter() as unknown as LockEvents;
