import {
  type AttemptOutcome,
  type LockBackend,
  type LockTarget,
  outcomeOf,
  type Refused,
} from './backend.js';
import { DriverMissingError } from './errors/driver-missing.error.js';
import { LockBackendError } from './errors/lock-backend.error.js';
import { LockBusyError } from './errors/lock-busy.error.js';
import { LockLostError, type LockLostReason } from './errors/lock-lost.error.js';
import { LockNotHeldError } from './errors/lock-release.error.js';
import { LockTimeoutError } from './errors/lock-timeout.error.js';
import { LockError } from './errors/lock.error.js';
import { HeldLink } from './held-set.js';
import { Hold, serverLifetime } from './hold.js';
import { ownerToken } from './holder.js';
import { lockTracer, runSection } from './instrumentation.js';
import { BOUND_MANAGER, type BoundOptions, defaultManager, type LockManager } from './manager.js';
import { messages } from './messages.js';
import {
  checkDuration,
  checkExpiry,
  checkKeys,
  CONTROL_CHARS,
  LOCK_OPTION_KEYS,
  type LockOptions,
  validateLockOptions,
} from './options.js';
import {
  BASE_MARK,
  backendOfLockClass,
  type BackendDefinition,
  type LockClass,
  setLockClassMaker,
} from './registry.js';
import type { LockEventBase, LockEventType } from './events.js';
import { operationDeadlines } from './timer-queue.js';
import { callAsync, DeadlineExceededError, now, settleWithin } from './timing.js';
import {
  type Acquired,
  type AcquireRequest,
  type Busy,
  type FirstAttempt,
  runAcquire,
  type SessionLock,
  undo,
} from './wait-session.js';

/** Options of a backend-specific lock: the lock options plus the client to use. */
export interface BaseLockOptions extends LockOptions {
  /**
   * The client to talk to the server with (checked at run time to be an instance of the backend's
   * client class). Default: the client given to `configure()` if it belongs to this backend, else
   * a shared client to localhost on the standard port, created on first use.
   */
  client?: object;
}

/**
 * @internal checks `acquire()`'s argument (a boolean, or `AcquireOptions`), with `timeout` as
 * the default timeout. Throws a TypeError / RangeError naming the option.
 */
export function acquireRequest(arg: unknown, timeout: number): AcquireRequest {
  if (typeof arg === 'boolean') return { blocking: arg, timeout };
  checkKeys(arg, 'acquire() options', ['blocking', 'timeout', 'signal']);
  const { blocking = true, timeout: given, signal } = arg as AcquireOptions;
  if (typeof blocking !== 'boolean') {
    throw new TypeError(messages.invalidOption('blocking', blocking, 'true or false'));
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(messages.invalidOption('signal', signal, 'an AbortSignal'));
  }
  const checked = given === undefined ? timeout : checkDuration('timeout', given, 0);
  return signal ? { blocking, timeout: checked, signal } : { blocking, timeout: checked };
}

/** The object form of `acquire()`'s argument. */
export interface AcquireOptions {
  /** `true` (default): wait up to `timeout` ms; `false`: one attempt, resolves `true`/`false`. */
  blocking?: boolean;
  /** Overrides the lock's `timeout` (ms) for this call. */
  timeout?: number;
  /** Cancels a waiting `acquire()`: it rejects with `LockAbortedError`, holding nothing. */
  signal?: AbortSignal;
}

/**
 * What a sherlock-style `_acquire` resolves: whether the lock was taken, and if the backend
 * issues fencing tokens, the token of this acquisition (a decimal string, strictly increasing per
 * lock name). `since` (a `performance.now()` time) is when the lock's expiry started counting at
 * the server, if that was before the attempt was sent.
 */
export type AcquireResult = boolean | { readonly fencingToken: string; readonly since?: number };

/** The lock API shared by every lock class, including the generic `Lock`. */
export interface DistributedLock extends AsyncDisposable {
  /** The name the lock was created with. */
  readonly name: string;
  /** The key (or path) the lock uses on the server, namespace included. */
  readonly key: string;
  /** Whether this lock object holds the lock (as far as it knows: the server may have expired it). */
  readonly isAcquired: boolean;
  /**
   * The fencing token of the current holding: a decimal string that strictly increases per lock
   * name with every acquire (compare with `BigInt`); `undefined` when not held or when the
   * backend issues none.
   */
  readonly fencingToken: string | undefined;
  /** Aborts when the current holding is known lost (reason: `LockLostError`). */
  readonly signal: AbortSignal;
  acquire(blocking?: boolean | AcquireOptions): Promise<boolean>;
  extend(ms?: number): Promise<void>;
  release(): Promise<void>;
  locked(): Promise<boolean>;
  using<T>(
    fn: (lock: this) => T | Promise<T>,
    options?: Omit<AcquireOptions, 'blocking'>,
  ): Promise<T>;
}

const MAX_KEY_BYTES = 1024;

/**
 * @internal the option under which a lock-like object made by the core (a `Semaphore`'s permit)
 * gives its backend and the primitives the lock machinery runs, instead of its class's.
 */
export const BOUND_PRIMITIVES = Symbol('nestjs-sherlock.primitives');

/** @internal what `BOUND_PRIMITIVES` carries. */
export interface PrimitiveBinding {
  readonly backend: BackendDefinition;
  readonly primitives: LockBackend<object, unknown, unknown>;
}

/** @internal options carrying a binding. */
export interface BoundPrimitives {
  readonly [BOUND_PRIMITIVES]?: PrimitiveBinding;
}

/**
 * A lock: the port of `sherlock.lock.BaseLock`, and the class of every lock object. The core
 * (options, validation, owner tokens, blocking and the wait session, deadlines, fencing, renewal,
 * the loss signal, `using`) lives here and in the lock's `LockManager`; the backend supplies the
 * primitives.
 *
 * A backend is best written as a `LockBackend` object (`nestjs-sherlock/backend`). Sherlock's way
 * works too: subclass `BaseLock`, implement `_acquire(token)`, `_release(token)` and `_locked()`
 * (and optionally `_extend(token, ttl)`), each one atomic server operation, and register the
 * class with `backends.register()`.
 *
 * @example
 * class MyLock extends BaseLock<MyClient> {
 *   protected async _acquire(token: string) { return this.client.setIfAbsent(this.key, token, this.expire); }
 *   protected async _release(token: string) { return this.client.deleteIfEquals(this.key, token); }
 *   protected async _locked() { return this.client.exists(this.key); }
 * }
 */
export abstract class BaseLock<C extends object = object>
  implements DistributedLock, LockTarget<C>
{
  /** The options a lock class accepts; a subclass with more options extends this list. */
  static readonly optionKeys: readonly string[] = [...LOCK_OPTION_KEYS, 'client'];
  static readonly [BASE_MARK] = true;

  readonly name: string;
  readonly key: string;
  readonly namespace: string | null;
  readonly expire: number | null;
  readonly timeout: number;
  readonly retryInterval: number;
  readonly operationTimeout: number;
  /** The renewal interval of `autoExtend` in ms, or `null` for no automatic renewal. */
  readonly renewEvery: number | null;
  /** The manager this lock belongs to: its defaults, client, events and held locks. */
  readonly manager: LockManager;
  /** The backend of this lock. */
  readonly backend: BackendDefinition;
  private readonly ownClient: C | undefined;
  /** The primitives this object runs: its backend's (a semaphore's: its permit primitives). */
  private readonly impl: LockBackend<object, unknown, unknown>;
  private readonly session: SessionLock<unknown>;
  private hold: Hold | null = null;
  /** The holding a `release()` is deleting right now: a renewal finding it gone is no loss. */
  private releasing: Hold | null = null;
  private acquiring = false;
  /** @internal this lock's place in its manager's held locks (see held-set.ts). */
  readonly heldLink: HeldLink<BaseLock> = new HeldLink<BaseLock>(this);
  /**
   * Whether a blocking acquire's first attempt goes without a hand-off waiter (no hand-off, or
   * one opened after the first refusal), so that the uncontended path may make it.
   */
  private readonly firstWithoutWaiter: boolean;

  constructor(name: string, options: BaseLockOptions = {}) {
    const lockClass = new.target as unknown as typeof BaseLock & LockClass;
    checkKeys(options, `${lockClass.name} options`, lockClass.optionKeys);
    const given = validateLockOptions(options);
    this.manager = (options as BoundOptions)[BOUND_MANAGER] ?? defaultManager();
    const binding = (options as BoundPrimitives)[BOUND_PRIMITIVES];
    this.backend = binding?.backend ?? backendOfLockClass(lockClass);
    this.impl = binding?.primitives ?? this.backend.impl;
    const settings = this.manager.settle(given, this.backend);
    this.namespace = settings.namespace;
    this.expire = settings.expire;
    this.timeout = settings.timeout;
    this.retryInterval = settings.retryInterval;
    this.operationTimeout = settings.operationTimeout;
    this.renewEvery = settings.renewEvery;
    if (options.client !== undefined)
      this.ownClient = this.backend.checkClient(options.client) as C;
    this.validateName(name);
    this.name = name;
    this.key = this.formatKey(name, this.namespace);
    this.validateExpire(this.expire);
    this.session = {
      target: this,
      backend: this.impl,
      operationTimeout: this.operationTimeout,
      retryInterval: this.retryInterval,
      onWaiting: (refused, waited, timeout) => this.emitWaiting(refused, waited, timeout),
      ownerSuffix: this.manager.ownerSuffix,
    };
    const handOff = this.impl.handOff;
    this.firstWithoutWaiter = handOff === undefined || handOff.openAfterRefusal === true;
  }

  /** Whether this lock's backend can extend locks (`extend()`, `autoExtend`). */
  get canExtend(): boolean {
    return this.backend.capabilities.extend;
  }

  /** The key on the server: the backend's format, else `namespace_name` (or `name`). */
  protected formatKey(name: string, namespace: string | null): string {
    const format = this.backend.impl.formatKey;
    if (format) return format(name, namespace);
    return namespace === null ? name : `${namespace}_${name}`;
  }

  /**
   * Checks a lock name: a non-empty string without control characters or lone surrogates, whose
   * key fits (1024 bytes) and follows the backend's rules. A sherlock-style subclass with stricter
   * rules may override this and call `super`. Throws a TypeError (not a string) or RangeError.
   */
  protected validateName(name: unknown): asserts name is string {
    const backend = this.backend.name;
    if (typeof name !== 'string') {
      throw new TypeError(messages.invalidName(backend, name, 'expected a string'));
    }
    const rule = (ok: boolean, text: string) => {
      if (!ok) throw new RangeError(messages.invalidName(backend, name, text));
    };
    rule(name.length > 0, 'expected a non-empty string');
    rule(!CONTROL_CHARS.test(name), 'control characters are not allowed');
    rule(!/[\ud800-\udfff]/u.test(name), 'lone surrogates are not allowed');
    const key = this.formatKey(name, this.namespace);
    const broken = this.backend.impl.checkKey?.(key);
    if (broken !== undefined) rule(false, broken);
    const bytes = Buffer.byteLength(key);
    rule(
      bytes <= MAX_KEY_BYTES,
      `the key would be ${bytes} bytes long; at most ${MAX_KEY_BYTES} are allowed`,
    );
  }

  /**
   * Checks `expire` against what the backend can store (beyond its declared limits, which the
   * core checks): a hook for sherlock-style subclasses.
   */
  protected validateExpire(expire: number | null): void {
    void expire;
  }

  /**
   * The client this lock talks to: the one given in its options, else its manager's (for the
   * default manager: the one given to `configure()` for this backend, else a shared client to the
   * default address, made on first use).
   */
  get client(): C {
    return this.ownClient ?? (this.manager.clientFor(this.backend, this.name) as C);
  }

  get isAcquired(): boolean {
    return this.hold !== null;
  }

  get fencingToken(): string | undefined {
    return this.hold?.fencingToken;
  }

  /** @internal the owner token and backend data of the current holding (leader election). */
  get holding(): { readonly token: string; readonly held: unknown } | null {
    return this.hold;
  }

  /**
   * Aborts when the current holding is known lost: a renewal found another owner, or the server
   * could not be reached to renew it before it would expire (aborted a margin before that
   * instant: a tenth of the TTL, at most 1 s). Its reason is a `LockLostError`. When the lock is
   * not held, an already-aborted signal.
   *
   * @example
   * await lock.using(async ({ signal }) => copyRows({ signal }));
   */
  get signal(): AbortSignal {
    return (
      this.hold?.signal ??
      AbortSignal.abort(new LockError(messages.notHeldSignal(this.name), this.name))
    );
  }

  /**
   * Acquires the lock. Blocking (the default) waits up to `timeout` ms, woken by the release on
   * backends that push it (else trying every `retryInterval` ms), and rejects with
   * `LockTimeoutError`; non-blocking makes one attempt and resolves `false` if the lock is taken.
   * Each attempt uses a new 128-bit owner token.
   *
   * @example
   * if (await lock.acquire(false)) { ... }              // non-blocking
   * await lock.acquire({ timeout: 2_000, signal });     // blocking, cancellable
   */
  acquire(blocking: boolean | AcquireOptions = true): Promise<boolean> {
    if (typeof blocking === 'boolean' && this.canAcquireFirst(blocking)) {
      return this.acquireFirst(blocking, false) as Promise<boolean>;
    }
    // One async function from here to the wait session (each level costs promises and ticks).
    return this.acquireWith(blocking, false) as Promise<boolean>;
  }

  /** @internal acquire(), resolving a `LockBusyError` (not thrown) instead of `false`. */
  acquireOrBusy(blocking: boolean | AcquireOptions = true): Promise<true | LockBusyError> {
    if (typeof blocking === 'boolean' && this.canAcquireFirst(blocking)) {
      return this.acquireFirst(blocking, true) as Promise<true | LockBusyError>;
    }
    return this.acquireWith(blocking, true) as Promise<true | LockBusyError>;
  }

  /**
   * Whether an acquire (no options object: no signal, the lock's timeout) may take the
   * uncontended path: no acquire in progress, not traced, and a first attempt without a waiter
   * (a hand-off backend that would listen at once, `listensAlready`, listens first instead).
   */
  private canAcquireFirst(blocking: boolean): boolean {
    if (this.acquiring) return false;
    if (!blocking) return true;
    return (
      this.firstWithoutWaiter &&
      lockTracer() === undefined &&
      this.impl.handOff?.listensAlready?.(this) !== true
    );
  }

  /**
   * The uncontended path of acquire(): the first attempt is made here, bounded by
   * `operationTimeout` (a deadline in the shared queue), and when the backend grants it the
   * holding starts and the acquire resolves: no wait session, no `async` level, no request or
   * outcome object. A refusal, a failure or the deadline hands the acquire on to the wait session
   * (`FirstAttempt`), which goes on exactly as after its own first attempt.
   */
  private acquireFirst(blocking: boolean, busy: boolean): Promise<boolean | LockBusyError> {
    this.acquiring = true;
    const start = now();
    const token = ownerToken(this.session.ownerSuffix);
    let pending: Promise<AttemptOutcome<unknown>>;
    try {
      pending = Promise.resolve(this.impl.acquire(this, token, undefined));
    } catch (err) {
      pending = Promise.reject(err as Error);
    }
    return new Promise<boolean | LockBusyError>((resolve, reject) => {
      let settled = false;
      const rest = (first: FirstAttempt) => {
        this.acquireRest(blocking, busy, start, first).then(resolve, reject);
      };
      const deadline = operationDeadlines.addAt(
        start + this.operationTimeout,
        () => {
          if (settled) return;
          settled = true;
          undo(this.session, token, pending);
          rest({ error: new DeadlineExceededError('acquire', this.operationTimeout) });
        },
        undefined,
      );
      pending.then(
        (value) => {
          if (settled) return;
          settled = true;
          deadline.cancel();
          // Granted: read the reply's fields (no normalised copy of it, as outcomeOf makes).
          if (value !== true && (typeof value !== 'object' || value === null || !value.granted)) {
            return rest({ refused: outcomeOf(value) as Refused });
          }
          try {
            const granted = value === true ? undefined : value;
            const since = granted?.since;
            this.startHoldWith(
              granted?.ownerToken ?? token,
              granted?.fencingToken,
              granted?.held,
              since === undefined ? start : Math.min(since, start),
              start,
            );
            if (this.manager.observes('acquired')) {
              this.manager.emit({ ...this.eventBase('acquired', start), blocking });
            }
            resolve(true);
          } catch (err) {
            reject(err);
          } finally {
            this.acquiring = false;
          }
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          deadline.cancel();
          // The server may have applied the write before the error (a dropped reply): undo it.
          undo(this.session, token, pending);
          rest({ error: err });
        },
      );
    });
  }

  /** An acquire whose first attempt (acquireFirst) was refused or failed: the wait session. */
  private async acquireRest(
    blocking: boolean,
    busy: boolean,
    start: number,
    first: FirstAttempt,
  ): Promise<boolean | LockBusyError> {
    try {
      const request: AcquireRequest = { blocking, timeout: this.timeout };
      let acquired;
      try {
        acquired = await runAcquire(this.session, request, start, first);
      } catch (err) {
        this.acquireFailed(err, start);
        throw err;
      }
      const outcome = this.acquireDone(acquired, request, start);
      return outcome === true || busy ? outcome : false;
    } finally {
      this.acquiring = false;
    }
  }

  /** acquire() (`busy` false: resolves `false` when busy) or acquireOrBusy() (`busy` true). */
  private async acquireWith(
    blocking: boolean | AcquireOptions,
    busy: boolean,
  ): Promise<boolean | LockBusyError> {
    const request = this.acquireOptions(blocking);
    if (this.acquiring) throw new LockError(messages.acquireInProgress(this.name), this.name);
    this.acquiring = true;
    const start = now();
    try {
      const tracer = request.blocking ? lockTracer() : undefined;
      let outcome: true | LockBusyError;
      if (tracer) {
        outcome = await tracer.acquire(this, () => this.runAcquire(request, start));
      } else {
        // runAcquire() inlined: the untraced path (almost every acquire) awaits once.
        let acquired;
        try {
          acquired = await runAcquire(this.session, request, start);
        } catch (err) {
          this.acquireFailed(err, start);
          throw err;
        }
        outcome = this.acquireDone(acquired, request, start);
      }
      return outcome === true || busy ? outcome : false;
    } finally {
      this.acquiring = false;
    }
  }

  /** One acquire: runs the wait session, starts the holding, emits what happened. */
  private async runAcquire(request: AcquireRequest, start: number): Promise<true | LockBusyError> {
    let outcome;
    try {
      outcome = await runAcquire(this.session, request, start);
    } catch (err) {
      this.acquireFailed(err, start);
      throw err;
    }
    return this.acquireDone(outcome, request, start);
  }

  /** An acquire rejected with `err`: emits `timeout` if it timed out. */
  private acquireFailed(err: unknown, start: number): void {
    if (err instanceof LockTimeoutError && this.manager.observes('timeout')) {
      this.manager.emit({ ...this.eventBase('timeout', start), error: err });
    }
  }

  /** An acquire's outcome: starts the holding (or says busy) and emits what happened. */
  private acquireDone(
    outcome: Acquired<unknown> | Busy,
    request: AcquireRequest,
    start: number,
  ): true | LockBusyError {
    if (!outcome.granted) {
      const { retryAfter } = outcome;
      if (this.manager.observes('busy')) {
        this.manager.emit({ ...this.eventBase('busy', start), retryAfter });
      }
      return new LockBusyError(this.name, { retryAfter });
    }
    this.startHold(outcome, start);
    if (this.manager.observes('acquired')) {
      this.manager.emit({ ...this.eventBase('acquired', start), blocking: request.blocking });
    }
    return true;
  }

  /**
   * The fields every event of this lock has; `start` is when the acquire began (events before
   * the holding), else the holding's own times are used.
   */
  private eventBase<T extends LockEventType>(
    type: T,
    start?: number,
    hold: Hold | null = this.hold,
  ): LockEventBase<T> {
    const at = now();
    const holding = start === undefined || type === 'acquired' ? hold : null;
    return {
      type,
      lock: this,
      name: this.name,
      key: this.key,
      backend: this.backend.name,
      fencingToken: holding?.fencingToken,
      waited: holding ? holding.waited : start === undefined ? 0 : at - start,
      held: holding ? at - holding.acquiredAt : 0,
    };
  }

  /** A blocking acquire found the lock taken: emits `waiting` (once per acquire). */
  private emitWaiting(refused: Refused, waited: number, timeout: number): void {
    if (!this.manager.observes('waiting')) return;
    this.manager.emit({
      ...this.eventBase('waiting', now() - waited),
      timeout,
      holderTtl: refused.holderTtl,
      position: refused.position,
    });
  }

  private acquireOptions(arg: unknown): AcquireRequest {
    return acquireRequest(arg, this.timeout);
  }

  /** How long the server surely keeps a lock it was asked to keep for `ttl` ms. */
  private lifetime(ttl: number): number {
    return serverLifetime(ttl, this.backend.capabilities.expiry);
  }

  /** Starts the holding an acquire begun at `start` got. */
  private startHold(acquired: Acquired<unknown>, start: number): void {
    this.startHoldWith(
      acquired.token,
      acquired.fencingToken,
      acquired.held,
      acquired.startedAt,
      start,
    );
  }

  /**
   * Starts the holding of `token` an acquire begun at `start` got; the lock's expiry started
   * counting at `startedAt` at the latest.
   */
  private startHoldWith(
    token: string,
    fencingToken: string | undefined,
    held: unknown,
    startedAt: number,
    start: number,
  ): void {
    const at = now();
    const hold = new Hold(token, fencingToken, held, this.onUnconfirmed, at - start, at);
    // A holding this object still had (its key vanished at the server, so this acquire was
    // granted afresh) is replaced: its renewal and loss timers stop with it.
    if (this.hold) this.hold.stop();
    this.hold = hold;
    this.manager.track(this, true);
    hold.confirm(startedAt, this.expire === null ? null : this.lifetime(this.expire), at);
    if (this.renewEvery !== null) this.scheduleRenewal(hold, this.renewEvery);
  }

  private scheduleRenewal(hold: Hold, interval: number): void {
    hold.scheduleRenewal(interval, () => {
      if (this.hold !== hold) return;
      // A failed renewal is retried at the next interval; if none succeeds before the expiry,
      // the hold's loss timer aborts the signal.
      this.extendHold(this.expire ?? undefined, true)
        .catch(() => undefined)
        .finally(() => {
          if (this.hold === hold) this.scheduleRenewal(hold, interval);
        });
    });
  }

  /** A holding's loss deadline passed unconfirmed (one function per lock, not per holding). */
  private readonly onUnconfirmed = (hold: Hold): void => this.lose(hold, 'unconfirmed');

  /** Marks `hold` as lost: aborts its signal and emits `lost` on the manager (once). */
  private lose(hold: Hold, reason: LockLostReason, cause?: unknown): void {
    const error = new LockLostError(this.name, reason, cause === undefined ? {} : { cause });
    if (hold.lose(error) && this.manager.observes('lost')) {
      this.manager.emit({ ...this.eventBase('lost', undefined, hold), error });
    }
  }

  /**
   * @internal runs one primitive within `operationTimeout`, wrapping failures in
   * LockBackendError (but not a missing driver, which is no server failure).
   */
  protected async bounded<T>(
    operation: 'release' | 'locked' | 'extend' | 'count',
    run: () => Promise<T>,
  ): Promise<T> {
    let settled;
    try {
      settled = await settleWithin(callAsync(run), this.operationTimeout);
    } catch (err) {
      throw this.operationFailed(operation, err);
    }
    if (settled.kind !== 'value') throw this.operationTimedOut(operation);
    return settled.value;
  }

  /** What a primitive's failure is thrown as (a missing driver is no server failure). */
  private operationFailed(operation: 'release' | 'locked' | 'extend' | 'count', err: unknown) {
    if (err instanceof DriverMissingError) return err;
    return new LockBackendError(this.name, operation, { cause: err });
  }

  /** What a primitive that did not answer within `operationTimeout` is thrown as. */
  private operationTimedOut(operation: 'release' | 'locked' | 'extend' | 'count') {
    const cause = new DeadlineExceededError(operation, this.operationTimeout);
    return new LockBackendError(this.name, operation, { cause });
  }

  private dropHold(hold: Hold): void {
    hold.stop();
    if (this.hold === hold) {
      this.hold = null;
      this.manager.track(this, false);
    }
  }

  /**
   * Releases the lock, atomically and only if this object's owner token still holds it. Rejects
   * with `LockNotHeldError` (`reason` 'not-acquired' or 'not-owned') otherwise, and with
   * `LockBackendError` if the server fails (the lock then stays held here, so you may retry).
   */
  release(): Promise<void> {
    const hold = this.hold;
    if (hold === null) {
      return Promise.reject(new LockNotHeldError(this.name, 'not-acquired', 'release'));
    }
    this.releasing = hold;
    let pending: Promise<boolean>;
    try {
      pending = Promise.resolve(this.impl.release(this, hold.token, hold.held));
    } catch (err) {
      pending = Promise.reject(err as Error);
    }
    // bounded('release', ...) inlined, without an `async` level: the reply (or the deadline, in
    // the shared queue) settles the release directly.
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      const deadline = operationDeadlines.addAt(
        now() + Math.max(0, this.operationTimeout),
        () => {
          if (settled) return;
          settled = true;
          if (this.releasing === hold) this.releasing = null;
          reject(this.operationTimedOut('release'));
        },
        undefined,
      );
      pending.then(
        (released) => {
          if (settled) return;
          settled = true;
          deadline.cancel();
          if (this.releasing === hold) this.releasing = null;
          this.dropHold(hold);
          if (!released) {
            reject(new LockNotHeldError(this.name, 'not-owned', 'release'));
            return;
          }
          if (this.manager.observes('released')) {
            this.manager.emit(this.eventBase('released', undefined, hold));
          }
          resolve();
        },
        (err: unknown) => {
          if (settled) return;
          settled = true;
          deadline.cancel();
          if (this.releasing === hold) this.releasing = null;
          reject(this.operationFailed('release', err));
        },
      );
    });
  }

  /**
   * @internal forgets the holding without releasing it (left to expire at shutdown): stops its
   * renewal and loss timers.
   */
  abandon(): void {
    if (this.hold) this.dropHold(this.hold);
  }

  /**
   * Sets the expiry of the held lock to `ms` from now (default: `expire`), atomically and only if
   * this object's owner token still holds it. Rejects with `LockNotHeldError` ('not-owned': the
   * signal then aborts; 'not-acquired': this object does not hold it), `LockBackendError` if the
   * server fails, and `LockError` if the backend cannot extend locks.
   *
   * @example
   * await lock.extend(30_000); // 30 s more from now
   */
  async extend(ms: number | undefined = this.expire ?? undefined): Promise<void> {
    return this.extendHold(ms, false);
  }

  /** `extend()`, telling the events whether it is `autoExtend`'s renewal. */
  private async extendHold(ms: number | undefined, automatic: boolean): Promise<void> {
    const hold = this.hold;
    if (hold === null) throw new LockNotHeldError(this.name, 'not-acquired', 'extend');
    const extend = this.impl.extend;
    if (!this.canExtend || !extend) {
      // Not a server failure (which LockBackendError would say): nothing was sent.
      throw new LockError(messages.cannotExtend(this.backend.name), this.name);
    }
    if (ms === undefined) {
      throw new TypeError(
        messages.invalidOption(
          'ms',
          ms,
          'a number of milliseconds (this lock has no expire to default to)',
        ),
      );
    }
    const ttl = checkDuration('ms', ms, 1);
    checkExpiry(this.backend, ttl, 'ms');
    this.validateExpire(ttl);
    const sentAt = now();
    let extended: boolean;
    try {
      extended = await this.bounded('extend', () =>
        extend.call(this.impl, this, hold.token, ttl, hold.held),
      );
    } catch (err) {
      this.emitExtendFailed(hold, ttl, automatic, err);
      throw err;
    }
    if (!extended) {
      const error = new LockNotHeldError(this.name, 'not-owned', 'extend');
      // A renewal that raced release() finds the lock deleted by it: that is no loss.
      if (this.hold !== hold || this.releasing === hold) throw error;
      this.emitExtendFailed(hold, ttl, automatic, error);
      this.lose(hold, 'taken');
      throw error;
    }
    if (this.hold === hold) hold.confirm(sentAt, this.lifetime(ttl));
    if (this.manager.observes('extended')) {
      this.manager.emit({ ...this.eventBase('extended', undefined, hold), ttl, automatic });
    }
  }

  /** Emits `extend-failed`, unless the holding ended meanwhile (released: nothing failed). */
  private emitExtendFailed(hold: Hold, ttl: number, automatic: boolean, error: unknown): void {
    if (this.hold !== hold || this.releasing === hold) return;
    if (!this.manager.observes('extend-failed')) return;
    this.manager.emit({
      ...this.eventBase('extend-failed', undefined, hold),
      ttl,
      automatic,
      error,
    });
  }

  /** Whether anyone (this object or another) holds the lock on the server right now. */
  async locked(): Promise<boolean> {
    return this.bounded('locked', () => this.impl.locked(this));
  }

  /**
   * Acquires (blocking), runs `fn`, releases in `finally` and returns `fn`'s result: the port of
   * sherlock's `with lock:`. If `fn` throws, its error wins over a failed release.
   *
   * @example
   * const total = await new RedisLock('invoices').using(async () => computeTotals());
   */
  async using<T>(
    fn: (lock: this) => T | Promise<T>,
    options: Omit<AcquireOptions, 'blocking'> = {},
  ): Promise<T> {
    // No options (the usual call): the uncontended path of acquire(true).
    await this.acquire(hasNoKeys(options) ? true : { ...options, blocking: true });
    let result: T;
    try {
      result = await runSection(this, () => fn(this));
    } catch (err) {
      await this.release().catch(() => undefined);
      throw err;
    }
    await this.release();
    return result;
  }

  /**
   * Releases the lock if this object holds it, so `await using` works.
   *
   * @example
   * await lock.acquire();
   * await using held = lock; // released when the block exits
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.hold !== null) await this.release();
  }
}

/** Whether `options` has no own enumerable key (no object built to find out). */
function hasNoKeys(options: object): boolean {
  for (const key in options) if (Object.hasOwn(options, key)) return false;
  return true;
}

// The lock class of a backend registered without one.
setLockClassMaker((name) => {
  const made = { [name]: class extends BaseLock {} }[name] as unknown as LockClass;
  return made;
});
