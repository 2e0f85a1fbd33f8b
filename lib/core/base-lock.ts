import { getConfiguration } from './configuration.js';
import { DriverMissingError } from './errors/driver-missing.error.js';
import { LockAbortedError } from './errors/lock-aborted.error.js';
import { LockBackendError } from './errors/lock-backend.error.js';
import { LockLostError, type LockLostReason } from './errors/lock-lost.error.js';
import { LockReleaseError } from './errors/lock-release.error.js';
import { LockTimeoutError } from './errors/lock-timeout.error.js';
import { LockError } from './errors/lock.error.js';
import { lockEvents } from './events.js';
import { Hold } from './hold.js';
import { trackHeld } from './lifecycle.js';
import { messages } from './messages.js';
import {
  checkDuration,
  checkKeys,
  CONTROL_CHARS,
  LOCK_OPTION_KEYS,
  type LockOptions,
  renewalInterval,
  validateLockOptions,
} from './options.js';
import { backendOfLockClass, type BackendDefinition } from './registry.js';
import { DeadlineExceededError, newOwnerToken, now, settleWithin, sleep } from './timing.js';

/** Options of a backend-specific lock: the lock options plus the client to use. */
export interface BaseLockOptions extends LockOptions {
  /**
   * The client to talk to the server with (checked at run time to be an instance of the backend's
   * client class). Default: the client given to `configure()` if it belongs to this backend, else
   * a shared client to localhost on the standard port, created on first use.
   */
  client?: object;
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

/** Notifications of releases for one waiting acquire (see `BaseLock.openWaiter`). */
export interface ReleaseWaiter {
  /**
   * Resolves when the lock may be free: a release was announced, its expiry passed, or a
   * fallback poll is due; at most after `remaining` ms, or when `signal` aborts.
   */
  wait(remaining: number, signal?: AbortSignal): Promise<void>;
  /** Stops listening. */
  close(): void;
  /**
   * True if a release since the last failed attempt cannot be missed (an etcd watch from the
   * revision that attempt read): the acquire then waits at once instead of trying again first.
   */
  readonly coversLastAttempt?: boolean;
}

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
 * What `_acquire` resolves: whether the lock was taken, and if the backend issues fencing tokens,
 * the token of this acquisition (a decimal string, strictly increasing per lock name). `since`
 * (a `performance.now()` time) is when the lock's expiry started counting at the server, if
 * that was before the attempt was sent (a waiter's lease, renewed earlier): the holder's expiry
 * and loss signal count from it.
 */
export type AcquireResult = boolean | { readonly fencingToken: string; readonly since?: number };

/**
 * The abstract lock: the port of `sherlock.lock.BaseLock`. It owns blocking, timeouts, retries,
 * deadlines, owner tokens, `using` and validation; a backend implements only the three primitives
 * `_acquire(token)`, `_release(token)` and `_locked()`, each a single atomic server operation.
 *
 * @example
 * class MyLock extends BaseLock<MyClient> {
 *   protected async _acquire(token: string) { return this.client.setIfAbsent(this.key, token, this.expire); }
 *   protected async _release(token: string) { return this.client.deleteIfEquals(this.key, token); }
 *   protected async _locked() { return this.client.exists(this.key); }
 * }
 */
export abstract class BaseLock<C extends object = object> implements DistributedLock {
  /** The options a lock class accepts; a subclass with more options extends this list. */
  static readonly optionKeys: readonly string[] = [...LOCK_OPTION_KEYS, 'client'];

  readonly name: string;
  readonly key: string;
  readonly namespace: string | null;
  readonly expire: number | null;
  readonly timeout: number;
  readonly retryInterval: number;
  readonly operationTimeout: number;
  /** The renewal interval of `autoExtend` in ms, or `null` for no automatic renewal. */
  readonly renewEvery: number | null;
  /** The registered backend this lock class belongs to, if any. */
  protected readonly backend: BackendDefinition | undefined;
  private readonly ownClient: C | undefined;
  private hold: Hold | null = null;
  /** The holding a `release()` is deleting right now: a renewal finding it gone is no loss. */
  private releasing: Hold | null = null;
  private acquiring = false;

  constructor(name: string, options: BaseLockOptions = {}) {
    const lockClass = new.target as unknown as typeof BaseLock;
    checkKeys(options, `${lockClass.name} options`, lockClass.optionKeys);
    const given = validateLockOptions(options);
    const defaults = getConfiguration();
    this.backend = backendOfLockClass(new.target);
    this.namespace = given.namespace !== undefined ? given.namespace : defaults.namespace;
    this.expire = given.expire !== undefined ? given.expire : defaults.expire;
    this.timeout = given.timeout ?? defaults.timeout;
    this.retryInterval = given.retryInterval ?? defaults.retryInterval;
    this.operationTimeout = given.operationTimeout ?? defaults.operationTimeout;
    if (options.client !== undefined) {
      this.ownClient = (
        this.backend ? this.backend.checkClient(options.client) : options.client
      ) as C;
    }
    this.validateName(name);
    this.name = name;
    this.key = this.formatKey(name, this.namespace);
    this.validateExpire(this.expire);
    this.renewEvery = renewalInterval(given.autoExtend ?? defaults.autoExtend, this.expire);
    if (this.renewEvery !== null && !this.canExtend) {
      throw new RangeError(
        `Invalid option 'autoExtend': the ${this.backendName} backend cannot extend a lock (${this.constructor.name} has no _extend)`,
      );
    }
  }

  /**
   * Tries to take the lock once: resolves `true` (or `{ fencingToken }`) if this owner token now
   * holds it, `false` if someone else does.
   */
  protected abstract _acquire(token: string): Promise<AcquireResult>;
  /** Deletes the lock if (and only if) `token` holds it, atomically: resolves whether it did. */
  protected abstract _release(token: string): Promise<boolean>;
  /** Whether anyone holds the lock. */
  protected abstract _locked(): Promise<boolean>;

  /**
   * Sets the lock's expiry to `ttl` ms from now if (and only if) `token` holds it, atomically:
   * resolves whether it did. Optional: a backend without it cannot `extend()` or `autoExtend`.
   */
  protected _extend(token: string, ttl: number): Promise<boolean> {
    void token;
    void ttl;
    return Promise.reject(
      new LockError(`The ${this.backendName} backend cannot extend locks`, this.name),
    );
  }

  /**
   * How long the server surely keeps a lock it was asked to keep for `ttl` ms, counted from when
   * the command was sent: the loss signal aborts a margin before that. A backend whose expiry
   * clock is coarser than the TTL it is sent overrides this.
   */
  protected minimumLifetime(ttl: number): number {
    return ttl;
  }

  /** Whether this lock class implements `_extend`. */
  get canExtend(): boolean {
    return this._extend !== BaseLock.prototype._extend;
  }

  /** The name of the backend, for messages. */
  protected get backendName(): string {
    return this.backend?.name ?? this.constructor.name;
  }

  /** The key on the server: `namespace_name`, or `name` without a namespace. */
  protected formatKey(name: string, namespace: string | null): string {
    return namespace === null ? name : `${namespace}_${name}`;
  }

  /**
   * Checks a lock name; a backend with stricter rules overrides this and calls `super`.
   * Throws a TypeError (not a string) or RangeError (a string the backend cannot store).
   */
  protected validateName(name: unknown): asserts name is string {
    if (typeof name !== 'string') {
      throw new TypeError(messages.invalidName(this.backendName, name, 'expected a string'));
    }
    const rule = (ok: boolean, text: string) => {
      if (!ok) throw new RangeError(messages.invalidName(this.backendName, name, text));
    };
    rule(name.length > 0, 'expected a non-empty string');
    rule(!CONTROL_CHARS.test(name), 'control characters are not allowed');
    rule(!/[\ud800-\udfff]/u.test(name), 'lone surrogates are not allowed');
    const bytes = Buffer.byteLength(this.formatKey(name, this.namespace));
    rule(
      bytes <= MAX_KEY_BYTES,
      `the key would be ${bytes} bytes long; at most ${MAX_KEY_BYTES} are allowed`,
    );
  }

  /** Checks `expire` against what the backend can store; overridden by backends with limits. */
  protected validateExpire(expire: number | null): void {
    void expire;
  }

  /**
   * The client this lock talks to: the one given in its options, else the one given to
   * `configure()` for this backend, else the shared default client.
   */
  protected get client(): C {
    if (this.ownClient) return this.ownClient;
    const { backend, client } = getConfiguration();
    if (this.backend && backend === this.backend && client) return client as C;
    if (this.backend) return this.backend.defaultClient() as C;
    throw new LockError(
      `Lock '${this.name}' has no client: pass { client } to ${this.constructor.name}, or register the class with backends.register()`,
      this.name,
    );
  }

  get isAcquired(): boolean {
    return this.hold !== null;
  }

  get fencingToken(): string | undefined {
    return this.hold?.fencingToken;
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
      AbortSignal.abort(new LockError(`Lock '${this.name}' is not held`, this.name))
    );
  }

  /**
   * Acquires the lock. Blocking (the default) retries every `retryInterval` ms and rejects with
   * `LockTimeoutError` after `timeout` ms; non-blocking makes one attempt and resolves `false` if
   * the lock is taken. Each attempt uses a new 128-bit owner token.
   *
   * @example
   * if (await lock.acquire(false)) { ... }              // non-blocking
   * await lock.acquire({ timeout: 2_000, signal });     // blocking, cancellable
   */
  async acquire(blocking: boolean | AcquireOptions = true): Promise<boolean> {
    const options = this.acquireOptions(blocking);
    if (this.acquiring) throw new LockError(messages.acquireInProgress(this.name), this.name);
    this.acquiring = true;
    this.blockingAcquire = options.blocking;
    try {
      return await this.acquireLoop(options.blocking, options.timeout, options.signal);
    } finally {
      this.acquiring = false;
      this.blockingAcquire = false;
      this.acquireEnded();
    }
  }

  /**
   * Whether a blocking `acquire()` is in progress: its failed attempts will be followed by more
   * (a backend that queues waiters may keep its place in line between them).
   */
  protected blockingAcquire = false;

  /** Called when an `acquire()` call ends, whatever its outcome (a backend's clean-up hook). */
  protected acquireEnded(): void {}

  private acquireOptions(arg: unknown): Required<Omit<AcquireOptions, 'signal'>> & AcquireOptions {
    if (typeof arg === 'boolean') return { blocking: arg, timeout: this.timeout };
    checkKeys(arg, 'acquire() options', ['blocking', 'timeout', 'signal']);
    const { blocking = true, timeout, signal } = arg as AcquireOptions;
    if (typeof blocking !== 'boolean') {
      throw new TypeError(messages.invalidOption('blocking', blocking, 'true or false'));
    }
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError(messages.invalidOption('signal', signal, 'an AbortSignal'));
    }
    const checked = timeout === undefined ? this.timeout : checkDuration('timeout', timeout, 0);
    return signal ? { blocking, timeout: checked, signal } : { blocking, timeout: checked };
  }

  private async acquireLoop(
    blocking: boolean,
    timeout: number,
    signal?: AbortSignal,
  ): Promise<boolean> {
    const start = now();
    let lastError: unknown;
    let waiter: ReleaseWaiter | undefined;
    let triedWaiter = false;
    try {
      for (;;) {
        if (signal?.aborted) throw new LockAbortedError(this.name, { cause: signal.reason });
        try {
          // Every attempt may take up to operationTimeout, so the last one (sent when `timeout`
          // runs out) can finish: a blocking acquire ends by timeout + operationTimeout at worst.
          if (await this.attempt(this.operationTimeout, signal)) return true;
          lastError = undefined;
        } catch (err) {
          // Aborted, or the backend's driver is not installed: retrying cannot help.
          if (err instanceof LockAbortedError || err instanceof DriverMissingError) throw err;
          if (!blocking) throw new LockBackendError(this.name, 'acquire', { cause: err });
          lastError = err;
        }
        if (!blocking) return false;
        const elapsed = now() - start;
        if (elapsed >= timeout) {
          throw new LockTimeoutError(
            this.name,
            timeout,
            lastError === undefined ? {} : { cause: lastError },
          );
        }
        if (!triedWaiter && lastError === undefined) {
          // Listen for releases *before* the next attempt, so none in between is missed.
          triedWaiter = true;
          waiter = await this.listen(signal);
          if (waiter && !waiter.coversLastAttempt) continue;
        }
        if (waiter) await waiter.wait(timeout - elapsed, signal);
        else await this.waitForRetry(Math.min(this.retryInterval, timeout - elapsed), signal);
      }
    } finally {
      waiter?.close();
    }
  }

  private async listen(signal?: AbortSignal): Promise<ReleaseWaiter | undefined> {
    try {
      const settled = await settleWithin(
        Promise.resolve().then(() => this.openWaiter()),
        this.operationTimeout,
        signal,
      );
      return settled.kind === 'value' ? settled.value : undefined;
    } catch {
      return undefined; // no notifications: keep polling
    }
  }

  /**
   * Starts listening for releases of this lock, for a blocking acquire that found it taken; the
   * acquire then waits on the returned waiter instead of polling. Backends that can push a
   * release (Redis pub/sub, in-process) override this; the default polls at `retryInterval`.
   */
  protected async openWaiter(): Promise<ReleaseWaiter | undefined> {
    return undefined;
  }

  /** Waits before the next attempt when polling (no waiter); a backend may add jitter. */
  protected async waitForRetry(ms: number, signal?: AbortSignal): Promise<void> {
    await sleep(ms, signal);
  }

  /** One attempt with its own deadline. A late success of an abandoned attempt is undone. */
  private async attempt(deadline: number, signal?: AbortSignal): Promise<boolean> {
    const token = newOwnerToken();
    const sentAt = now();
    const pending = Promise.resolve().then(() => this._acquire(token));
    let settled;
    try {
      settled = await settleWithin(pending, deadline, signal);
    } catch (err) {
      // The server may have applied the write before the error (a dropped reply): undo it.
      this.undo(token, pending);
      throw err;
    }
    if (settled.kind === 'value') {
      const result = settled.value;
      if (result === false) return false;
      const since = typeof result === 'object' ? Math.min(result.since ?? sentAt, sentAt) : sentAt;
      this.startHold(token, typeof result === 'object' ? result.fencingToken : undefined, since);
      return true;
    }
    this.undo(token, pending);
    if (settled.kind === 'aborted')
      throw new LockAbortedError(this.name, { cause: settled.reason });
    throw new DeadlineExceededError('acquire', deadline);
  }

  /** Releases `token` in the background once an abandoned attempt settles (best effort). */
  private undo(token: string, pending: Promise<AcquireResult>): void {
    pending
      .then(
        (granted) => (granted !== false ? this._release(token) : false),
        () => this._release(token),
      )
      .catch(() => undefined);
  }

  private startHold(token: string, fencingToken: string | undefined, sentAt: number): void {
    const hold = new Hold(token, fencingToken, (expired) => this.lose(expired, 'unconfirmed'));
    this.hold = hold;
    trackHeld(this, true);
    hold.confirm(sentAt, this.expire === null ? null : this.minimumLifetime(this.expire));
    if (this.renewEvery !== null) this.scheduleRenewal(hold, this.renewEvery);
  }

  private scheduleRenewal(hold: Hold, interval: number): void {
    hold.scheduleRenewal(interval, () => {
      if (this.hold !== hold) return;
      // A failed renewal is retried at the next interval; if none succeeds before the expiry,
      // the hold's loss timer aborts the signal.
      this.extend()
        .catch(() => undefined)
        .finally(() => {
          if (this.hold === hold) this.scheduleRenewal(hold, interval);
        });
    });
  }

  /** Marks `hold` as lost: aborts its signal and emits `lost` (once). */
  private lose(hold: Hold, reason: LockLostReason, cause?: unknown): void {
    const error = new LockLostError(this.name, reason, cause === undefined ? {} : { cause });
    if (hold.lose(error))
      lockEvents.emit('lost', { lock: this, name: this.name, key: this.key, error });
  }

  /**
   * Runs one primitive within `operationTimeout`, wrapping failures in LockBackendError (but not
   * a missing driver, which is no server failure).
   */
  private async bounded<T>(
    operation: 'release' | 'locked' | 'extend',
    run: () => Promise<T>,
  ): Promise<T> {
    let settled;
    try {
      settled = await settleWithin(Promise.resolve().then(run), this.operationTimeout);
    } catch (err) {
      if (err instanceof DriverMissingError) throw err;
      throw new LockBackendError(this.name, operation, { cause: err });
    }
    if (settled.kind !== 'value') {
      const cause = new DeadlineExceededError(operation, this.operationTimeout);
      throw new LockBackendError(this.name, operation, { cause });
    }
    return settled.value;
  }

  /**
   * Releases the lock, atomically and only if this object's owner token still holds it. Rejects
   * with `LockReleaseError` (`reason` 'not-acquired' or 'not-owned') otherwise, and with
   * `LockBackendError` if the server fails (the lock then stays held here, so you may retry).
   */
  async release(): Promise<void> {
    const hold = this.hold;
    if (hold === null) throw new LockReleaseError(this.name, 'not-acquired');
    this.releasing = hold;
    let released: boolean;
    try {
      released = await this.bounded('release', () => this._release(hold.token));
    } finally {
      if (this.releasing === hold) this.releasing = null;
    }
    hold.stop();
    if (this.hold === hold) {
      this.hold = null;
      trackHeld(this, false);
    }
    if (!released) throw new LockReleaseError(this.name, 'not-owned');
  }

  /**
   * Sets the expiry of the held lock to `ms` from now (default: `expire`), atomically and only if
   * this object's owner token still holds it. Rejects with `LockReleaseError('not-owned')` if it
   * does not (the signal then aborts), `LockReleaseError('not-acquired')` if this object never
   * acquired it, `LockBackendError` if the server fails, and `LockError` if the backend cannot
   * extend locks (no `_extend`).
   *
   * @example
   * await lock.extend(30_000); // 30 s more from now
   */
  async extend(ms: number | undefined = this.expire ?? undefined): Promise<void> {
    const hold = this.hold;
    if (hold === null) throw new LockReleaseError(this.name, 'not-acquired');
    if (!this.canExtend) {
      // Not a server failure (which LockBackendError would say): nothing was sent.
      throw new LockError(`The ${this.backendName} backend cannot extend locks`, this.name);
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
    this.validateExpire(ttl);
    const sentAt = now();
    const extended = await this.bounded('extend', () => this._extend(hold.token, ttl));
    if (!extended) {
      // A renewal that raced release() finds the lock deleted by it: that is no loss.
      if (this.hold === hold && this.releasing !== hold) this.lose(hold, 'taken');
      throw new LockReleaseError(this.name, 'not-owned');
    }
    if (this.hold === hold) hold.confirm(sentAt, this.minimumLifetime(ttl));
  }

  /** Whether anyone (this object or another) holds the lock on the server right now. */
  async locked(): Promise<boolean> {
    return this.bounded('locked', () => this._locked());
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
    await this.acquire({ ...options, blocking: true });
    let result: T;
    try {
      result = await fn(this);
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
