/**
 * The names a `backend` option takes, as a type: the keys of `SherlockBackends`. The built-in
 * backends are listed here; a backend you register with `backends.register()` joins the union by
 * declaration merging (module augmentation), so that a misspelt name is a compile error, not a
 * RangeError at start-up:
 *
 * @example
 * declare module 'nestjs-sherlock' {
 *   interface SherlockBackends {
 *     etcdhttp: true;
 *   }
 * }
 * // now `backend: 'etcdhttp'` type-checks everywhere (configure, LockManager, SherlockModule)
 *
 * (Augment the entry point you import from: `'nestjs-sherlock'`, `'nestjs-sherlock/core'` or
 * `'nestjs-sherlock/backend'`; the three name the same interface.) At run time names are
 * case-insensitive; the type lists them in lower case, as `backends.names()` reports them.
 */
export interface SherlockBackends {
  redis: true;
  memcached: true;
  /** Alias of `memcached` (sherlock's spelling). */
  memcache: true;
  etcd: true;
  memory: true;
  redlock: true;
  threads: true;
  cluster: true;
  postgres: true;
  zookeeper: true;
}

/** The name of a registered backend: `'redis'`, `'memcached'`, `'etcd'`, `'memory'`, ... */
export type BackendName = keyof SherlockBackends & string;
