import {
  checkKeys,
  DEFAULT_LOCK_OPTIONS,
  LOCK_OPTION_KEYS,
  type LockOptions,
  renewalInterval,
  type ResolvedLockOptions,
  validateLockOptions,
} from './options.js';
import { backendOfClient, backends, type BackendDefinition } from './registry.js';

/** What `configure()` takes: the lock options plus the global-only `backend` and `client`. */
export interface ConfigureOptions extends LockOptions {
  /**
   * The backend of the generic `Lock`: `'redis'`, `'memcached'`, `'etcd'`, `'memory'`, the name
   * of a registered backend, or a definition such as `backends.REDIS`. Global only.
   */
  backend?: string | BackendDefinition;
  /**
   * A client of the backend's library (an ioredis `Redis` or `Cluster`, a memjs `Client`, an
   * etcd3 `Etcd3`, a `MemoryStore`). Given without `backend`, it sets the backend by its class.
   * Global only; it is closed by neither `shutdown()` nor this library.
   */
  client?: object;
}

/** The process-wide configuration, as `getConfiguration()` returns it. */
export interface SherlockConfiguration extends ResolvedLockOptions {
  readonly backend: BackendDefinition | null;
  readonly client: object | null;
}

const CONFIGURE_KEYS = ['backend', 'client', ...LOCK_OPTION_KEYS] as const;

const initial: SherlockConfiguration = Object.freeze({
  ...DEFAULT_LOCK_OPTIONS,
  backend: null,
  client: null,
});

let current: SherlockConfiguration = initial;

/**
 * Sets process-wide defaults: the port of `sherlock.configure()`. Only the options given change.
 * Every option is validated first; on a bad one nothing changes and a TypeError or RangeError
 * names the option, the value and what is allowed.
 *
 * @example
 * import { configure, Lock } from 'nestjs-sherlock';
 * import { Redis } from 'ioredis';
 *
 * configure({ backend: 'redis', client: new Redis(process.env.REDIS_URL!), expire: 30_000 });
 * const lock = new Lock('my_lock');
 */
export function configure(options: ConfigureOptions): void {
  checkKeys(options, 'configure()', CONFIGURE_KEYS);
  const lockOptions = validateLockOptions(options);
  let backend = current.backend;
  let client = current.client;
  if (options.backend !== undefined) {
    backend = backends.get(options.backend as string | BackendDefinition);
    // A client configured for another backend no longer applies.
    if (client && !backend.isClient(client)) client = null;
  }
  if (options.client !== undefined) {
    if (backend) {
      client = backend.checkClient(options.client);
    } else {
      backend = backendOfClient(options.client);
      client = options.client;
    }
  }
  const next = Object.freeze({ ...current, ...lockOptions, backend, client });
  renewalInterval(next.autoExtend, next.expire); // settings that cannot work fail here
  if (next.backend) {
    // The backend's own limits (an expire below its granularity, above Memcached's 30 days):
    // a lock built with these settings validates them, and is dropped.
    const { backend: definition, client: unused, ...settings } = next;
    void unused;
    new definition.lockClass('configure', settings);
  }
  current = next;
}

/** The current process-wide configuration (a frozen snapshot). */
export function getConfiguration(): SherlockConfiguration {
  return current;
}

/** Restores every setting to its default (no backend, no client). Handy between tests. */
export function resetConfiguration(): void {
  current = initial;
}
