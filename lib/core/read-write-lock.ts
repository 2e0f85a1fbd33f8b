import type {
  LockBackend,
  LockTarget,
  ReadWriteBackend,
  ReadWriteMode,
  ReadWriteState,
  ReadWriteTarget,
} from './backend.js';
import { BaseLock, BOUND_PRIMITIVES, type BoundPrimitives } from './base-lock.js';
import { LockError } from './errors/lock.error.js';
import { UnsupportedFeatureError } from './errors/unsupported-feature.error.js';
import {
  BOUND_MANAGER,
  type BoundOptions,
  defaultManager,
  type LockManager,
  setReadWriteMaker,
} from './manager.js';
import { messages } from './messages.js';
import { checkKeys, LOCK_OPTION_KEYS, type LockOptions } from './options.js';
import type { BackendDefinition } from './registry.js';

export type { ReadWriteMode, ReadWriteState };

/** The read-write primitives of `backend`, or the typed refusal saying why it has none. */
function readWriteOf(backend: BackendDefinition, name: string): ReadWriteBackend<object> {
  const readWrite = backend.capabilities.readWrite === true ? backend.impl.readWrite : undefined;
  if (!readWrite) {
    const reason = backend.impl.unsupported?.readWrite ?? messages.noReadWrite;
    throw new UnsupportedFeatureError(name, backend.name, 'readWrite', reason);
  }
  return readWrite;
}

const adapters = new WeakMap<BackendDefinition, LockBackend<object, unknown, unknown>>();

/**
 * The read-write primitives of `backend` presented as a lock's: the target is the side itself
 * (`ReadWriteSide`), which carries its `mode`, so the core's wait session, renewal, loss signal
 * and release run over a reader's or the writer's holding exactly as over a lock's. `locked`
 * means "an `acquire(false)` of this side would be refused".
 */
function sidePrimitives(
  backend: BackendDefinition,
  readWrite: ReadWriteBackend<object>,
): LockBackend<object, unknown, unknown> {
  let adapter = adapters.get(backend);
  if (adapter) return adapter;
  const rw = (lock: LockTarget) => lock as ReadWriteTarget;
  const { extend, handOff } = readWrite;
  const {
    extend: _lockExtend,
    handOff: _lockHandOff,
    semaphore: _semaphore,
    readWrite: _readWrite,
    ...shared
  } = backend.impl;
  adapter = {
    ...shared,
    acquire: (lock, token, waiter) => readWrite.acquire(rw(lock), token, waiter),
    release: (lock, token, held) => readWrite.release(rw(lock), token, held),
    locked: async (lock) => {
      const state = await readWrite.state(rw(lock));
      return rw(lock).mode === 'read'
        ? state.writer || state.writerWaiting
        : state.writer || state.readers > 0;
    },
    ...(extend
      ? {
          extend: (lock: LockTarget, token: string, ttl: number, held: unknown) =>
            extend.call(readWrite, rw(lock), token, ttl, held),
        }
      : {}),
    ...(handOff ? { handOff } : {}),
  };
  adapters.set(backend, adapter);
  return adapter;
}

/**
 * One side of a `ReadWriteLock`: `rw.read` (shared) or `rw.write` (exclusive). It is a lock
 * object like any other: `acquire(blocking | { timeout, signal })`, `release()`, `using()`,
 * `await using`, `extend()`, `autoExtend`, the loss `signal` and `fencingToken` all work, for
 * this object's one holding. `locked()` says whether an `acquire(false)` of this side would be
 * refused now.
 */
export class ReadWriteSide extends BaseLock implements ReadWriteTarget {
  /** `'read'` (shared with other readers) or `'write'` (exclusive). */
  readonly mode: ReadWriteMode;
  private readonly primitives: ReadWriteBackend<object>;

  /** @internal made by `ReadWriteLock`. */
  constructor(
    name: string,
    mode: ReadWriteMode,
    options: LockOptions & BoundOptions & BoundPrimitives,
    primitives: ReadWriteBackend<object>,
  ) {
    super(name, options);
    this.mode = mode;
    this.primitives = primitives;
  }

  /** The server state of the whole read-write lock now (readers, writer, a writer waiting). */
  async state(): Promise<ReadWriteState> {
    return this.bounded('locked', () => this.primitives.state(this));
  }
}

/**
 * A read-write lock: many readers or one writer of `name` at once, across every process using
 * the same server. `rw.read` and `rw.write` are lock objects (one holding each); make one
 * `ReadWriteLock` per caller, as you would a lock. Writers never starve: once a writer waits
 * (a blocking `write.acquire()`), new readers are refused until it has had its turn. Expired
 * holdings (a holder that died) are dropped by the server. `new ReadWriteLock()` uses the backend
 * set with `configure()`; `manager.readWrite(name)` a manager's. Backends that cannot hold one
 * safely (Memcached, Redlock) refuse it with an `UnsupportedFeatureError`. See
 * docs/read-write.md.
 *
 * @example
 * import { configure, ReadWriteLock } from 'nestjs-sherlock';
 * configure({ backend: 'redis' });
 * const prices = new ReadWriteLock('prices', { expire: 30_000 });
 * const list = await prices.read.using(async () => readPrices());   // many at once
 * await prices.write.using(async () => reloadPrices());              // alone
 */
export class ReadWriteLock {
  /** The options `new ReadWriteLock()` accepts: the lock options. */
  static readonly optionKeys: readonly string[] = LOCK_OPTION_KEYS;

  readonly name: string;
  /** The shared side: held by any number of readers while no writer holds or waits. */
  readonly read: ReadWriteSide;
  /** The exclusive side: held by one writer while nobody else holds. */
  readonly write: ReadWriteSide;

  constructor(name: string, options: LockOptions = {}) {
    checkKeys(options, 'ReadWriteLock options', LOCK_OPTION_KEYS);
    const manager: LockManager = (options as BoundOptions)[BOUND_MANAGER] ?? defaultManager();
    const backend = manager.configuration.backend;
    if (!backend) {
      throw new LockError(messages.noBackendFor('readWrite', String(name)), String(name));
    }
    const readWrite = readWriteOf(backend, String(name));
    const bound: LockOptions & BoundOptions & BoundPrimitives = {
      ...options,
      [BOUND_MANAGER]: manager,
      [BOUND_PRIMITIVES]: { backend, primitives: sidePrimitives(backend, readWrite) },
    };
    this.read = new ReadWriteSide(name, 'read', bound, readWrite);
    this.write = new ReadWriteSide(name, 'write', bound, readWrite);
    this.name = this.read.name;
  }

  /** The key on the server (namespace included). */
  get key(): string {
    return this.read.key;
  }

  /**
   * The server state now: how many readers hold it, whether a writer holds it, and whether a
   * writer waits (new readers are then refused). Rejects with `LockBackendError` if the server
   * fails.
   */
  state(): Promise<ReadWriteState> {
    return this.read.state();
  }
}

setReadWriteMaker((name, options) => new ReadWriteLock(name, options));
