import type { ConfigService } from '@nestjs/config';
import type { BackendName, SherlockModuleOptions } from 'nestjs-sherlock';

/** The backends this app can run on (`BackendName` lists every registered one). */
const BACKENDS = ['memory', 'redis', 'memcached', 'etcd'] as const satisfies readonly BackendName[];
type SampleBackend = (typeof BACKENDS)[number];

const isSampleBackend = (name: string): name is SampleBackend =>
  (BACKENDS as readonly string[]).includes(name);

/** The variable that holds the connection settings of each server backend. */
const CONNECTION_VARIABLES: Readonly<Partial<Record<SampleBackend, string>>> = {
  redis: 'REDIS_URL', // redis://host:6379
  memcached: 'MEMCACHED_SERVERS', // host1:11211,host2:11211
  etcd: 'ETCD_HOSTS', // http://host1:2379,http://host2:2379
};

/**
 * Builds the SherlockModule options from the environment:
 *
 * - `SHERLOCK_BACKEND`: `memory` (default: one process only, no server needed), `redis`,
 *   `memcached` or `etcd`;
 * - `REDIS_URL` / `MEMCACHED_SERVERS` / `ETCD_HOSTS`: where that backend's server is (unset:
 *   the backend's default address on 127.0.0.1);
 * - `SHERLOCK_NAMESPACE`: prefix of every lock key (default `sample`), so that several apps can
 *   share one server without their lock names colliding;
 * - `SHERLOCK_APP_NAME`: the application name every lock's holder metadata carries (shown by
 *   the live page `GET /locks` and the CLI; default `sample-app`);
 * - `SHERLOCK_TIMEOUT_MS`: how long a `@Locked` call waits for a busy lock before it fails with
 *   LockTimeoutError (default 10 000, the library's default).
 *
 * The module creates its client from `connection` and closes it on shutdown.
 */
export function sherlockOptions(config: ConfigService): SherlockModuleOptions {
  // The `backend` option is typed as the union of backend names: a value read from the
  // environment is a string, checked here (the module would refuse an unknown one at start-up too).
  const backend = config.get<string>('SHERLOCK_BACKEND', 'memory').trim().toLowerCase();
  if (!isSampleBackend(backend)) {
    throw new RangeError(
      `Invalid SHERLOCK_BACKEND: got '${backend}', expected one of ${BACKENDS.join(', ')}`,
    );
  }
  const variable = CONNECTION_VARIABLES[backend];
  const connection = variable ? config.get<string>(variable)?.trim() || undefined : undefined;
  return {
    backend,
    ...(connection !== undefined ? { connection } : {}),
    namespace: config.get<string>('SHERLOCK_NAMESPACE', 'sample'),
    appName: config.get<string>('SHERLOCK_APP_NAME', 'sample-app'),
    // A lock frees itself after 30 s should its holder crash without releasing it.
    expire: 30_000,
    // Defaults for every @Locked() and LockService.run() of the app.
    locked: { timeout: Number(config.get<string>('SHERLOCK_TIMEOUT_MS', '10000')) },
  };
}
