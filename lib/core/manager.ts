import { EventEmitter } from 'node:events';
import type { BaseLock } from './base-lock.js';
import type { ReadWriteLock } from './read-write-lock.js';
import type { Semaphore, SemaphoreOptions } from './semaphore.js';
import type { LeaderElection, LeaderElectionOptions } from './leader-election.js';
import type { ConnectionSettings } from './connection.js';
import { LockError } from './errors/lock.error.js';
import { type BackendHealth, pingBackend } from './health.js';
import {
  lockChannels,
  lockEvents,
  type LockEvent,
  type LockEventListener,
  type LockEvents,
  type LockEventType,
} from './events.js';
import { HeldSet } from './held-set.js';
import { appNameProblem, ownerSuffix } from './holder.js';
import {
  forceReleaseLock,
  inspectLock,
  listArguments,
  listLocks,
  type ListOptions,
  type LockForceReleasedEvent,
  type LockInfo,
} from './inspection.js';
import { messages } from './messages.js';
import { MultiLock } from './multi-lock.js';
import {
  checkKeys,
  DEFAULT_LOCK_OPTIONS,
  LOCK_OPTION_KEYS,
  type LockOptions,
  type LockSettings,
  type ResolvedLockOptions,
  settle,
  validateLockOptions,
} from './options.js';
import type { BackendName } from './backend-names.js';
import { type BackendDefinition, backendOfClient, backends, isRegistered } from './registry.js';

/** What `new LockManager()` takes: a backend, how to reach it, and defaults for its locks. */
export interface LockManagerOptions extends LockOptions {
  /**
   * `'redis'`, `'memcached'`, `'etcd'`, `'memory'`, `'redlock'`, `'threads'`, `'cluster'`, a backend registered with
   * `backends.register()`, or its `backends.X` value. May be left out when `client` is given.
   * A name is type-checked against `BackendName` (see `SherlockBackends` to add yours).
   */
  backend?: BackendName | BackendDefinition;
  /** A client you created: used, and left open by `close()`. Exclusive with `connection`. */
  client?: object;
  /**
   * Settings the manager creates its own client from (closed by `close()`): a Redis URL or
   * ioredis options; Memcached servers (`'h1:11211,h2:11211'`, an array, or `{ servers, ... }`);
   * Etcd hosts (`'http://h:2379'`, an array) or etcd3 options; Redlock server URLs. With neither
   * `client` nor `connection`: the backend's default address (memory: the process's store).
   */
  connection?: ConnectionSettings;
  /**
   * The application name written into every holding's metadata (shown by `inspect()`, `list()`,
   * the CLI): at most 64 characters, no control characters. Default: none.
   */
  appName?: string;
}

/** What `close()` (and `shutdown()`) did. */
export interface ShutdownReport {
  /** Names of the locks that were still held and were released. */
  released: string[];
  /** Locks that were still held but could not be released (they expire on their own). */
  failed: { name: string; error: unknown }[];
}

const MANAGER_KEYS = ['backend', 'client', 'connection', 'appName', ...LOCK_OPTION_KEYS] as const;

/** @internal the option under which `manager.lock()` binds a lock to its manager. */
export const BOUND_MANAGER = Symbol('nestjs-sherlock.manager');

/** @internal what a lock created by `manager.lock()` is given. */
export interface BoundOptions {
  readonly [BOUND_MANAGER]?: LockManager;
}

/**
 * Makes a `Semaphore`; set by semaphore.ts when it loads (a value import of it here would make a
 * module cycle that breaks `class Semaphore extends BaseLock`).
 */
let makeSemaphore: ((name: string, options: SemaphoreOptions) => Semaphore) | undefined;

/** @internal semaphore.ts hands over how to make a semaphore. */
export function setSemaphoreMaker(
  maker: (name: string, options: SemaphoreOptions) => Semaphore,
): void {
  makeSemaphore = maker;
}

/** Makes a `ReadWriteLock`; set by read-write-lock.ts when it loads (as for the semaphore). */
let makeReadWrite: ((name: string, options: LockOptions) => ReadWriteLock) | undefined;

/** @internal read-write-lock.ts hands over how to make a read-write lock. */
export function setReadWriteMaker(
  maker: (name: string, options: LockOptions) => ReadWriteLock,
): void {
  makeReadWrite = maker;
}

/** Makes a `LeaderElection`; set by leader-election.ts when it loads (same cycle as above). */
let makeElection:
  ((name: string, options: LeaderElectionOptions & BoundOptions) => LeaderElection) | undefined;

/** @internal leader-election.ts hands over how to make an election. */
export function setElectionMaker(
  maker: (name: string, options: LeaderElectionOptions & BoundOptions) => LeaderElection,
): void {
  makeElection = maker;
}

/** The state `configure()` sets on the default manager. */
interface Configured {
  readonly backend: BackendDefinition | null;
  readonly client: object | null;
  readonly defaults: ResolvedLockOptions;
}

/**
 * A set of locks on one backend: it owns their defaults, its client (and closes it only if it
 * made it), the locks it handed out that are still held, and their events. Each Nest
 * `SherlockModule` registration has one; `configure()` and `new Lock()` use the process's default
 * one.
 *
 * @example
 * import { LockManager } from 'nestjs-sherlock/core';
 *
 * const locks = new LockManager({ backend: 'redis', connection: process.env.REDIS_URL, expire: 30_000 });
 * locks.on('lost', ({ name, error }) => console.error(`lost ${name}: ${error.reason}`));
 * await locks.lock('invoices').using(async () => generateInvoices());
 * await locks.close(); // releases what is still held, closes the client it made
 */
export class LockManager {
  private configured: Configured;
  private readonly ownsClient: boolean;
  private readonly isDefault: boolean;
  private readonly emitter: EventEmitter;
  private readonly heldLocks = new HeldSet<BaseLock>();
  /** Clients made for locks without one (default manager: one per backend). */
  private readonly shared = new Map<BackendDefinition, object>();
  private closed = false;
  /** @internal the end of every owner token of this manager's locks: `|pid|host|app`. */
  readonly ownerSuffix: string;
  /** What `close()` does first (elections resign), by owner. */
  private readonly closers = new Map<object, () => Promise<void>>();

  constructor(options: LockManagerOptions);
  /** @internal the default manager */
  constructor(options: LockManagerOptions, internal: { default: true; events: LockEvents });
  constructor(options: LockManagerOptions, internal?: { default: true; events: LockEvents }) {
    if (internal) {
      this.isDefault = true;
      this.ownsClient = false;
      this.emitter = internal.events as unknown as EventEmitter;
      this.configured = { backend: null, client: null, defaults: DEFAULT_LOCK_OPTIONS };
      this.ownerSuffix = ownerSuffix(null);
      return;
    }
    const raw: unknown = options;
    checkKeys(raw, 'LockManager options', MANAGER_KEYS);
    const given = validateLockOptions(raw);
    const { backend: named, client, connection, appName } = options;
    const badName = appName === undefined ? undefined : appNameProblem(appName);
    if (badName !== undefined)
      throw new TypeError(messages.invalidOption('appName', appName, badName));
    this.ownerSuffix = ownerSuffix(appName ?? null);
    if (client !== undefined && connection !== undefined) {
      throw new TypeError(messages.clientAndConnection('manager'));
    }
    const backend = resolveBackend(named, client);
    if (client !== undefined) backend.checkClient(client);
    const { renewEvery: _renewEvery, ...defaults } = settle(given, DEFAULT_LOCK_OPTIONS, backend);
    this.isDefault = false;
    this.emitter = new EventEmitter();
    this.ownsClient = client === undefined;
    // Made now (drivers connect lazily or in the background), so that connection settings the
    // backend cannot use fail here, not at the first lock.
    const made = client ?? backend.connect(connection);
    this.configured = { backend, client: made, defaults: Object.freeze(defaults) };
  }

  /** The backend of this manager's locks. */
  get backend(): BackendDefinition {
    const { backend } = this.configured;
    if (!backend) throw new LockError(messages.noBackend('(default manager)'), '');
    return backend;
  }

  /** The defaults of this manager's locks, every option resolved. */
  get defaults(): ResolvedLockOptions {
    return this.configured.defaults;
  }

  /** The client this manager's locks use. Throws once the manager is closed. */
  get client(): object {
    return this.clientFor(this.backend);
  }

  /** Whether `close()` was called (the default manager is never closed for good). */
  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * A lock object for `name` on this manager's backend, not yet acquired; `options` override
   * the manager's defaults for this lock.
   *
   * @example
   * const lock = locks.lock('report', { expire: 120_000 });
   * if (await lock.acquire(false)) { ... }
   */
  lock(name: string, options: LockOptions = {}): BaseLock {
    const backend = this.backend;
    if (this.closed) throw new LockError(messages.managerClosed(backend.name), String(name));
    checkKeys(options, 'lock options', LOCK_OPTION_KEYS);
    const bound: LockOptions & BoundOptions = { ...options, [BOUND_MANAGER]: this };
    return new backend.lockClass(name, bound) as BaseLock;
  }

  /**
   * A multi-lock over `names` on this manager's backend, not yet acquired: every lock or none,
   * taken in one canonical order (sorted by key, duplicates once) so that two callers never
   * deadlock, within one `timeout` for the whole set. `options` apply to every member.
   *
   * @example
   * const both = locks.lockAll([`account:${from}`, `account:${to}`]);
   * await both.using(async () => move(from, to, amount));
   */
  lockAll(names: readonly string[], options: LockOptions = {}): MultiLock {
    const backend = this.backend;
    if (this.closed) throw new LockError(messages.managerClosed(backend.name), '');
    checkKeys(options, 'lockAll() options', LOCK_OPTION_KEYS);
    const bound: LockOptions & BoundOptions = { ...options, [BOUND_MANAGER]: this };
    return new MultiLock(names, bound);
  }

  /**
   * A semaphore object for `name` on this manager's backend, with `limit` permits, not yet
   * acquired: one object per holder, like a lock. `options` override the manager's defaults.
   * Throws an `UnsupportedFeatureError` on a backend that cannot hold one (Memcached, Redlock,
   * PostgreSQL, threads, cluster).
   *
   * @example
   * await locks.semaphore('exports', 3).using(async () => exportBatch());
   */
  semaphore(name: string, limit: number, options: LockOptions = {}): Semaphore {
    const backend = this.backend;
    if (this.closed) throw new LockError(messages.managerClosed(backend.name), String(name));
    checkKeys(options, 'semaphore options', LOCK_OPTION_KEYS);
    if (!makeSemaphore) throw new Error('Semaphore is not loaded');
    const bound: SemaphoreOptions & BoundOptions = { ...options, limit, [BOUND_MANAGER]: this };
    return makeSemaphore(name, bound);
  }

  /**
   * A read-write lock for `name` on this manager's backend, not yet acquired: `.read` (shared)
   * and `.write` (exclusive), each lock-like. `options` override the manager's defaults. Throws
   * an `UnsupportedFeatureError` on a backend that cannot hold one (Memcached, Redlock,
   * PostgreSQL, threads, cluster).
   *
   * @example
   * const catalog = locks.readWrite('catalog');
   * const items = await catalog.read.using(async () => loadCatalog());
   */
  readWrite(name: string, options: LockOptions = {}): ReadWriteLock {
    const backend = this.backend;
    if (this.closed) throw new LockError(messages.managerClosed(backend.name), String(name));
    checkKeys(options, 'readWrite options', LOCK_OPTION_KEYS);
    if (!makeReadWrite) throw new Error('ReadWriteLock is not loaded');
    const bound: LockOptions & BoundOptions = { ...options, [BOUND_MANAGER]: this };
    return makeReadWrite(name, bound);
  }

  /**
   * One cheap round trip to this manager's backend (Redis `PING`, ...) within `timeout` ms
   * (default: `operationTimeout`), for health checks. Never rejects for a server failure: it
   * resolves `{ up: false, reason }`. A busy lock is no failure: no lock is taken.
   *
   * @example
   * const health = await locks.ping(1_000);
   * if (!health.up) console.error(`lock server: ${health.reason}`);
   */
  async ping(timeout: number = this.configured.defaults.operationTimeout): Promise<BackendHealth> {
    const backend = this.backend;
    if (this.closed) return { up: false, backend: backend.name, reason: 'the manager is closed' };
    return pingBackend(backend, this.client, timeout);
  }

  /**
   * A leader election for `name` on this manager's backend: `campaign()` resolves when this
   * process leads. `close()` of the manager resigns it. Throws an `UnsupportedFeatureError` on a
   * backend that cannot hold one (see docs/leader-election.md).
   *
   * @example
   * const { term, signal } = await locks.election('scheduler').campaign();
   */
  election(name: string, options: LeaderElectionOptions = {}): LeaderElection {
    const backend = this.backend;
    if (this.closed) throw new LockError(messages.managerClosed(backend.name), String(name));
    if (!makeElection) throw new Error('LeaderElection is not loaded');
    if (typeof options !== 'object' || options === null || Array.isArray(options)) {
      throw new TypeError(
        messages.invalidOption('election options', options, 'an object of options'),
      );
    }
    return makeElection(name, { ...options, [BOUND_MANAGER]: this });
  }

  /** @internal runs `close` first when this manager closes (an election resigns). */
  onClose(owner: object, close: () => Promise<void>): void {
    this.closers.set(owner, close);
  }

  /** @internal forgets what `onClose` registered for `owner`. */
  offClose(owner: object): void {
    this.closers.delete(owner);
  }

  /** The locks (and semaphores) of this manager held right now (acquired and not released). */
  held(): readonly BaseLock[] {
    return this.heldLocks.toArray();
  }

  /**
   * Who holds `name` right now, as the server says: holder (host, pid, application, when it
   * acquired), time left, fencing token, waiters. Throws `UnsupportedFeatureError` on a backend
   * without inspection (threads, PostgreSQL), `LockBackendError` when the server fails. See
   * docs/inspection.md.
   *
   * @example
   * const info = await locks.inspect('billing:close-month');
   * if (info.held) console.log(`held by ${info.holder?.host} pid ${info.holder?.pid}, ${info.ttl} ms left`);
   */
  async inspect(name: string): Promise<LockInfo> {
    const lock = this.lock(name);
    return inspectLock(this.backend, lock);
  }

  /**
   * The held locks of this manager's namespace whose names start with `prefix`, sorted by name,
   * without blocking the server (Redis: `SCAN` with `MATCH`/`COUNT`; Etcd: a range read).
   * Throws `UnsupportedFeatureError` on a backend that cannot list (Memcached, threads,
   * PostgreSQL).
   */
  async list(prefix = '', options?: ListOptions): Promise<LockInfo[]> {
    const limit = listArguments(prefix, options);
    const backend = this.backend;
    if (this.closed) throw new LockError(messages.managerClosed(backend.name), prefix);
    const { namespace, operationTimeout } = this.configured.defaults;
    return listLocks(backend, { client: this.client, namespace, operationTimeout }, prefix, limit);
  }

  /**
   * Deletes the lock `name` whoever holds it, and wakes the next waiter. The evicted holder is
   * not told at once: its `signal` aborts at its next renewal (or when its expiry was due).
   * Emits `'forceReleased'`. Resolves what it deleted, or `null` when nobody held it.
   * For operators (the CLI, the live page): never call it to take a lock that is merely busy.
   */
  async forceRelease(name: string): Promise<LockInfo | null> {
    const lock = this.lock(name);
    const removed = await forceReleaseLock(this.backend, lock);
    if (removed !== null) {
      const event: LockForceReleasedEvent = { name: lock.name, key: lock.key, removed };
      this.emitter.emit('forceReleased', event);
    }
    return removed;
  }

  /**
   * Listens for this manager's events (see `LockEventType`): `'waiting'`, `'acquired'`, `'busy'`,
   * `'timeout'`, `'extended'`, `'extend-failed'`, `'released'`, `'lost'` (when a held lock is
   * known lost; its `signal` aborts at the same time), and `'forceReleased'` (when
   * `forceRelease()` deleted a holding). Each event is built only when someone
   * listens (here, or on its `node:diagnostics_channel`). A listener that throws does not break
   * the lock: its error is rethrown on the next tick, as `diagnostics_channel` does.
   *
   * @example
   * locks.on('acquired', ({ name, waited }) => console.log(`${name} after ${waited} ms`));
   */
  on<E extends LockEventType>(event: E, listener: LockEventListener<E>): this;
  on(event: 'forceReleased', listener: (event: LockForceReleasedEvent) => void): this;
  on(event: LockEventType | 'forceReleased', listener: (event: never) => void): this {
    this.emitter.on(event, listener as (event: unknown) => void);
    return this;
  }

  once<E extends LockEventType>(event: E, listener: LockEventListener<E>): this;
  once(event: 'forceReleased', listener: (event: LockForceReleasedEvent) => void): this;
  once(event: LockEventType | 'forceReleased', listener: (event: never) => void): this {
    this.emitter.once(event, listener as (event: unknown) => void);
    return this;
  }

  off<E extends LockEventType>(event: E, listener: LockEventListener<E>): this;
  off(event: 'forceReleased', listener: (event: LockForceReleasedEvent) => void): this;
  off(event: LockEventType | 'forceReleased', listener: (event: never) => void): this {
    this.emitter.off(event, listener as (event: unknown) => void);
    return this;
  }

  /**
   * Releases every lock of this manager still held (best effort), then closes the client if this
   * manager made it. A closed manager creates no more locks. (The default manager, closed by
   * `shutdown()`, closes the clients it made and stays usable: they are made again when needed.)
   */
  async close(): Promise<ShutdownReport> {
    const closers = [...this.closers.values()];
    this.closers.clear();
    await Promise.allSettled(closers.map((close) => close()));
    const locks = this.heldLocks.toArray();
    const results = await Promise.allSettled(locks.map((lock) => lock.release()));
    const report: ShutdownReport = { released: [], failed: [] };
    results.forEach((result, i) => {
      const lock = locks[i];
      if (!lock) return;
      this.heldLocks.delete(lock);
      if (result.status === 'fulfilled') report.released.push(lock.name);
      else {
        // Not released: left to expire at the server. Its renewal and loss timers stop here.
        lock.abandon();
        report.failed.push({ name: lock.name, error: result.reason });
      }
    });
    if (!this.isDefault) this.closed = true;
    const closing: Promise<void>[] = [];
    for (const [backend, client] of this.shared) closing.push(backend.closeClient(client));
    this.shared.clear();
    const { backend, client } = this.configured;
    if (this.ownsClient && backend && client) closing.push(backend.closeClient(client));
    await Promise.allSettled(closing);
    return report;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** @internal the client for a lock of `backend` that has none of its own. */
  clientFor(backend: BackendDefinition, lockName = ''): object {
    const { backend: own, client } = this.configured;
    if (this.closed) throw new LockError(messages.managerClosed(backend.name), lockName);
    if (backend === own && client) return client;
    return this.sharedClient(backend, lockName);
  }

  /** @internal the client this manager made for `backend`, made on first use. */
  sharedClient(backend: BackendDefinition, lockName = ''): object {
    let client = this.shared.get(backend);
    if (!client) {
      if (!isRegistered(backend)) {
        throw new LockError(messages.noClient(lockName, backend.lockClass.name), lockName);
      }
      client = backend.connect(undefined);
      this.shared.set(backend, client);
    }
    return client;
  }

  /** @internal the lock's settings: `given` over this manager's defaults, for `backend`. */
  settle(given: LockOptions, backend: BackendDefinition): LockSettings {
    return settle(given, this.configured.defaults, backend);
  }

  /** @internal called by a lock when it acquires / releases. */
  track(lock: BaseLock, held: boolean): void {
    if (held) this.heldLocks.add(lock);
    else this.heldLocks.delete(lock);
  }

  /** @internal whether anyone listens for `type` (here or on its diagnostics channel). */
  observes(type: LockEventType): boolean {
    return lockChannels[type].hasSubscribers || this.emitter.listenerCount(type) > 0;
  }

  /** @internal emits a lock event to this manager's listeners and its diagnostics channel. */
  emit(event: LockEvent): void {
    try {
      this.emitter.emit(event.type, event);
    } catch (err) {
      process.nextTick(() => {
        throw err;
      });
    }
    const published = lockChannels[event.type];
    if (published.hasSubscribers) published.publish(event);
  }

  /** @internal `configure()`'s state (default manager only). */
  get configuration(): Configured {
    return this.configured;
  }

  /** @internal sets `configure()`'s state (default manager only). */
  reconfigure(next: Configured): void {
    if (!this.isDefault) throw new Error('only the default manager is reconfigured');
    this.configured = next;
  }
}

/** The backend named by `backend`, or the one `client` belongs to. */
export function resolveBackend(
  backend: string | BackendDefinition | undefined,
  client: unknown,
): BackendDefinition {
  if (backend !== undefined) return backends.get(backend);
  if (client !== undefined) return backendOfClient(client);
  throw new TypeError(
    messages.invalidOption(
      'backend',
      undefined,
      `one of ${backends
        .names()
        .map((n) => `'${n}'`)
        .join(', ')} (or give a client)`,
    ),
  );
}

let theDefault: LockManager | undefined;

/**
 * The process's default manager: the one `configure()` sets up and `new Lock()`, `new RedisLock()`
 * (without a manager), `lockEvents`, `heldLocks()` and `shutdown()` use.
 */
export function defaultManager(): LockManager {
  theDefault ??= new LockManager({}, { default: true, events: lockEvents });
  return theDefault;
}
