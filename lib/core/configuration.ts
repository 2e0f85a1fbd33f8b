import { defaultManager } from './manager.js';
import {
  checkKeys,
  DEFAULT_LOCK_OPTIONS,
  LOCK_OPTION_KEYS,
  type LockOptions,
  renewalInterval,
  type ResolvedLockOptions,
  settle,
  validateLockOptions,
} from './options.js';
import type { BackendName } from './backend-names.js';
import { backendOfClient, backends, type BackendDefinition } from './registry.js';

/** What `configure()` takes: the lock options plus the global-only `backend` and `client`. */
export interface ConfigureOptions extends LockOptions {
  /**
   * The backend of the generic `Lock`: a built-in one (`'redis'`, `'memcached'`, `'etcd'`,
   * `'memory'`, `'redlock'`, `'postgres'`, `'zookeeper'`, `'threads'`, `'cluster'`), the name of
   * a registered backend, or a definition such as `backends.REDIS`. Global only. A name is
   * type-checked against `BackendName` (see `SherlockBackends` to add yours).
   */
  backend?: BackendName | BackendDefinition;
  /**
   * A client of the backend's library (an ioredis `Redis` or `Cluster`, a memjs `Client`, an
   * etcd3 `Etcd3`, a pg `Pool`, a `ZooKeeperClient`, a `MemoryStore`; see
   * docs/core.md). Given without `backend`, it sets the backend by its class.
   * Global only; it is closed by neither `shutdown()` nor this library.
   */
  client?: object;
}

/** The default manager's configuration, as `getConfiguration()` returns it. */
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

let snapshot: SherlockConfiguration = initial;

/**
 * Sets up the default manager, the one the generic `Lock` and the lock classes use when created
 * without a manager: the port of `sherlock.configure()`. Only the options given change. Every
 * option is validated first, against the configured backend too; on a bad one nothing changes and
 * a TypeError or RangeError names the option, the value and what is allowed. A `LockManager`
 * (each Nest registration has one) never reads these settings.
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
  const manager = defaultManager();
  const current = manager.configuration;
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
  const defaults: ResolvedLockOptions = Object.freeze({ ...current.defaults, ...lockOptions });
  // Settings that cannot work fail here, not at the first lock: checked against the backend's
  // limits when there is one.
  if (backend) settle({}, defaults, backend);
  else renewalInterval(defaults.autoExtend, defaults.expire);
  manager.reconfigure({ backend, client, defaults });
  snapshot = Object.freeze({ ...defaults, backend, client });
}

/** The current configuration of the default manager (a frozen snapshot). */
export function getConfiguration(): SherlockConfiguration {
  return snapshot;
}

/** Restores every setting to its default (no backend, no client). Handy between tests. */
export function resetConfiguration(): void {
  defaultManager().reconfigure({ backend: null, client: null, defaults: DEFAULT_LOCK_OPTIONS });
  snapshot = initial;
}
