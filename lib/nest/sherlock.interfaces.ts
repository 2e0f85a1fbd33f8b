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
} from '../sherlock.js';

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
   * `LockBusyError` (did not wait) — HTTP handlers answer 409 Conflict; `'skip'` does not run the
   * method and resolves `undefined` (the cron-job-on-every-replica case).
   */
  onBusy?: OnBusy;
  /**
   * Keep the lock at least this long (ms, from acquisition) even if the method returns sooner,
   * so that a replica whose cron fires a little later does not run the same job again
   * (ShedLock's `lockAtLeastFor`). Must not exceed `expire`. Default 0.
   */
  atLeastFor?: number;
}

/** Options of `@Locked()`: `LockedOptions` plus which registration's `LockService` to use. */
export interface LockedDecoratorOptions extends LockedOptions {
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
   * Defaults for every `@Locked()` and `LockService.run()` of this registration. `onBusy` may
   * only be `'throw'` here: `'skip'` goes on the calls that may skip, where their types show it.
   */
  locked?: LockedOptions & { onBusy?: 'throw' };
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
