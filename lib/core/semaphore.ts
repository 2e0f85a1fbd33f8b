import type { LockBackend, LockTarget, SemaphoreBackend, SemaphoreTarget } from './backend.js';
import { BaseLock, BOUND_PRIMITIVES, type BoundPrimitives } from './base-lock.js';
import { LockError } from './errors/lock.error.js';
import { UnsupportedFeatureError } from './errors/unsupported-feature.error.js';
import {
  BOUND_MANAGER,
  type BoundOptions,
  defaultManager,
  type LockManager,
  setSemaphoreMaker,
} from './manager.js';
import { messages } from './messages.js';
import { checkKeys, LOCK_OPTION_KEYS, type LockOptions } from './options.js';
import type { BackendDefinition } from './registry.js';

/** What `new Semaphore()` takes: the lock options and the number of permits. */
export interface SemaphoreOptions extends LockOptions {
  /**
   * How many holders at once: a whole number >= 1. It belongs to each acquire, not to the name
   * (nothing is stored): see docs/semaphore.md, "One limit per name".
   */
  limit: number;
}

const SEMAPHORE_OPTION_KEYS: readonly string[] = [...LOCK_OPTION_KEYS, 'limit'];

/** Checks a semaphore's `limit`: a whole number >= 1. Throws a TypeError / RangeError naming it. */
export function checkLimit(value: unknown): number {
  const allowed = 'a whole number of permits >= 1';
  if (typeof value !== 'number') {
    throw new TypeError(messages.invalidOption('limit', value, allowed));
  }
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(messages.invalidOption('limit', value, allowed));
  }
  return value;
}

/** The semaphore primitives of `backend`, or the typed refusal saying why it has none. */
function semaphoreOf(backend: BackendDefinition, name: string): SemaphoreBackend<object> {
  const semaphore = backend.capabilities.semaphore === true ? backend.impl.semaphore : undefined;
  if (!semaphore) {
    const reason = backend.impl.unsupported?.semaphore ?? messages.noSemaphores;
    throw new UnsupportedFeatureError(name, backend.name, 'semaphore', reason);
  }
  return semaphore;
}

const adapters = new WeakMap<BackendDefinition, LockBackend<object, unknown, unknown>>();

/**
 * The semaphore primitives of `backend` presented as a lock's: the target is the `Semaphore`
 * itself, which carries the `limit`, so the core's wait session, renewal, loss signal and
 * release run over permits exactly as over a lock. `locked` means "every permit is taken".
 */
function permitPrimitives(
  backend: BackendDefinition,
  semaphore: SemaphoreBackend<object>,
): LockBackend<object, unknown, unknown> {
  let adapter = adapters.get(backend);
  if (adapter) return adapter;
  const sem = (lock: LockTarget) => lock as SemaphoreTarget;
  const { extend, handOff } = semaphore;
  const {
    extend: _lockExtend,
    handOff: _lockHandOff,
    semaphore: _semaphore,
    ...shared
  } = backend.impl;
  adapter = {
    ...shared,
    acquire: (lock, token, waiter) => semaphore.acquire(sem(lock), token, waiter),
    release: (lock, token, held) => semaphore.release(sem(lock), token, held),
    locked: async (lock) => (await semaphore.count(sem(lock))) >= sem(lock).limit,
    ...(extend
      ? {
          extend: (lock: LockTarget, token: string, ttl: number, held: unknown) =>
            extend.call(semaphore, sem(lock), token, ttl, held),
        }
      : {}),
    ...(handOff ? { handOff } : {}),
  };
  adapters.set(backend, adapter);
  return adapter;
}

/**
 * A counting semaphore: at most `limit` holders of `name` at once, across every process using
 * the same server. One `Semaphore` object stands for one holder, like a lock object: `acquire()`
 * takes a permit, `release()` gives it back; `using`, `await using`, `extend()`, `autoExtend`,
 * the loss `signal` and `fencingToken` work per permit exactly as for a lock. Expired permits (a
 * holder that died) are reclaimed by the server. `new Semaphore()` uses the backend set with
 * `configure()`; `manager.semaphore(name, limit)` a manager's. Backends that cannot hold one
 * safely (Memcached, Redlock) refuse it with an `UnsupportedFeatureError`.
 *
 * @example
 * import { configure, Semaphore } from 'nestjs-sherlock';
 * configure({ backend: 'redis' });
 * // At most 4 report builds at once, over every replica.
 * await new Semaphore('reports', { limit: 4, expire: 60_000 }).using(async () => buildReport());
 */
export class Semaphore extends BaseLock implements SemaphoreTarget {
  static override readonly optionKeys: readonly string[] = SEMAPHORE_OPTION_KEYS;

  /** How many permits may be held at once (this object's acquires count against it). */
  readonly limit: number;
  private readonly primitives: SemaphoreBackend<object>;

  constructor(name: string, options: SemaphoreOptions) {
    checkKeys(options, 'Semaphore options', SEMAPHORE_OPTION_KEYS);
    const { limit, ...lockOptions } = options;
    const checked = checkLimit(limit);
    const manager: LockManager = (options as BoundOptions)[BOUND_MANAGER] ?? defaultManager();
    const backend = manager.configuration.backend;
    if (!backend) {
      throw new LockError(messages.noBackendFor('semaphore', String(name)), String(name));
    }
    const semaphore = semaphoreOf(backend, String(name));
    const bound: LockOptions & BoundOptions & BoundPrimitives = {
      ...lockOptions,
      [BOUND_MANAGER]: manager,
      [BOUND_PRIMITIVES]: { backend, primitives: permitPrimitives(backend, semaphore) },
    };
    super(name, bound);
    this.limit = checked;
    this.primitives = semaphore;
  }

  /**
   * How many permits are held now, by anyone (expired ones not counted; on etcd, the entries
   * first in line, at most `limit`). Rejects with `LockBackendError` if the server fails.
   */
  async count(): Promise<number> {
    return this.bounded('count', () => this.primitives.count(this));
  }

  /** Whether every permit is taken now (an `acquire(false)` would be refused). */
  override async locked(): Promise<boolean> {
    return super.locked();
  }
}

setSemaphoreMaker((name, options) => new Semaphore(name, options));
