import type {
  InjectionToken,
  ModuleMetadata,
  OptionalFactoryDependency,
  Type,
} from '@nestjs/common';
import type {
  BackendDefinition,
  BackendName,
  ConnectionSettings,
  LockOptions,
  ReadWriteMode,
} from '../sherlock.js';
import type { LockErrorMapping } from './lock-error-mapping.js';

/** What a `@Locked` call does when the lock is held by someone else. */
export type OnBusy = 'throw' | 'skip';

/** Options of `@Locked()`, of `LockService.run()`, and the module's `locked` defaults. */
export interface LockedOptions {
  /** Lock expiry in ms (`null`: never). Default: the module's `expire`. */
  expire?: number | null;
  /** How long to wait for the lock when `wait` is true, in ms. Default: the module's `timeout`. */
  timeout?: number;
  /** Pause between attempts while waiting, in ms. Default: the module's `retryInterval`. */
  retryInterval?: number;
  /**
   * Renew the lock while the method runs: `true` every `expire / 3`, or an interval in ms (at
   * most `expire / 2`). If a renewal finds the lock gone, `currentLock().signal` aborts.
   * Default: the module's `autoExtend`.
   */
  autoExtend?: boolean | number;
  /** `true` (default): wait up to `timeout`; `false`: give up at once if the lock is held. */
  wait?: boolean;
  /**
   * When the lock is busy: `'throw'` (default) rejects with `LockTimeoutError` (waited) or
   * `LockBusyError` (did not wait) — a handler answers it as its transport expects (HTTP 409,
   * see docs/errors.md); `'skip'` does not run the method and resolves `undefined` (the
   * cron-job-on-every-replica case).
   */
  onBusy?: OnBusy;
  /**
   * Keep the lock at least this long (ms, from acquisition) even if the method returns sooner,
   * so that a replica whose cron fires a little later does not run the same job again
   * (ShedLock's `lockAtLeastFor`). Must not exceed `expire`. Default 0.
   */
  atLeastFor?: number;
}

/**
 * What `@Locked()` / `run()` take instead of a plain lock, for one name (at most one of them):
 * a semaphore permit (`limit`) or one side of a read-write lock (`mode`).
 */
export interface LockedPrimitiveOptions {
  /**
   * Take a permit of a semaphore of this many permits (a whole number >= 1) instead of a lock:
   * at most `limit` calls run at once, over every replica. Not with `mode` or several names.
   */
  limit?: number;
  /**
   * Take the `'read'` (shared) or `'write'` (exclusive) side of a read-write lock instead of a
   * lock. Not with `limit` or several names.
   */
  mode?: ReadWriteMode;
}

/** Options of `@Locked()`: `LockedOptions` plus which registration's `LockService` to use. */
export interface LockedDecoratorOptions extends LockedOptions, LockedPrimitiveOptions {
  /** The `name` of a named `SherlockModule` registration. Default: the unnamed one. */
  name?: string;
  /** @deprecated The name of `name` before 1.0: use `name`. */
  service?: string;
}

/** Settings of a `SherlockModule` registration. */
export interface SherlockModuleOptions extends LockOptions {
  /**
   * `'redis'`, `'memcached'`, `'etcd'`, `'memory'`, a backend registered with
   * `backends.register()`, or its `backends.X` value. May be left out when `client` is given.
   * A name is type-checked against `BackendName` (see `SherlockBackends` to add yours).
   */
  backend?: BackendName | BackendDefinition;
  /** A client you created (left open on shutdown). Exclusive with `connection`. */
  client?: object;
  /**
   * Connection settings the module creates its own client from (closed on shutdown): a Redis URL
   * or ioredis options; a Memcached server list (`'h1:11211,h2:11211'` or an array) or
   * `{ servers, ...memjsOptions }`; Etcd hosts (`'http://h:2379'`, an array) or etcd3 options.
   * With neither `client` nor `connection`: the backend's default address (memory: shared store).
   */
  connection?: ConnectionSettings;
  /**
   * The application name written into every holding's metadata, shown by `inspect()`, `list()`,
   * the CLI and the live page: at most 64 characters, no control characters.
   */
  appName?: string;
  /**
   * Defaults for every `@Locked()` and `LockService.run()` of this registration. `onBusy` may
   * only be `'throw'` here: `'skip'` goes on the calls that may skip, where their types show it.
   */
  locked?: LockedOptions & { onBusy?: 'throw' };
  /**
   * How handlers answer lock errors (HTTP 409 / 503 with `Retry-After`, GraphQL `extensions.code`,
   * `RpcException`, `WsException`: see docs/errors.md). `false` turns it off; a function
   * `(error, context) => unknown` returns what to throw instead (`undefined`: the default);
   * `{ map, unavailableRetryAfter }` also sets the `Retry-After` (ms) of a backend that is down.
   * It applies to the whole application: set it on one registration only. Default: on.
   */
  errorMapping?: LockErrorMapping;
}

/** Where a registration lives: its name (for several backends) and whether it is global. */
export interface SherlockModuleRegistration {
  /** Name of this registration, for `@InjectLockService(name)` and `@Locked(x, { name })`. */
  name?: string;
  /** Register the module globally (no need to import it in feature modules). */
  isGlobal?: boolean;
}

/** A class that builds the module options, for `forRootAsync({ useClass | useExisting })`. */
export interface SherlockOptionsFactory {
  createSherlockOptions(): SherlockModuleOptions | Promise<SherlockModuleOptions>;
}

/** Options of `SherlockModule.forRootAsync()`. */
export interface SherlockModuleAsyncOptions
  extends SherlockModuleRegistration, Pick<ModuleMetadata, 'imports'> {
  useFactory?: (...args: never[]) => SherlockModuleOptions | Promise<SherlockModuleOptions>;
  inject?: (InjectionToken | OptionalFactoryDependency)[];
  useClass?: Type<SherlockOptionsFactory>;
  useExisting?: Type<SherlockOptionsFactory>;
}
