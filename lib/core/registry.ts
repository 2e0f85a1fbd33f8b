import { DriverMissingError } from './errors/driver-missing.error.js';
import { messages } from './messages.js';
import type { LockOptions } from './options.js';

/** A client class a backend accepts (`client instanceof clientClass`). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- constructor parameters vary by library
export type ClientClass = abstract new (...args: any[]) => object;

/** A lock class a backend provides: `new lockClass(name, options)`. */
export type LockClass = new (
  name: string,
  options?: LockOptions & { client?: object },
) => { readonly name: string };

/**
 * What `backends.register()` takes: the port of sherlock's
 * `backends.register(name, lock_class, library, client_class, default_args, default_kwargs)`.
 */
export interface BackendRegistration<C extends object = object> {
  /** The backend's name, as used in `configure({ backend: name })`; also `backends.NAME`. */
  name: string;
  /** A subclass of `BaseLock` implementing `_acquire`, `_release` and `_locked`. */
  lockClass: LockClass;
  /** The npm package of the client library (used in error messages). */
  library: string;
  /** The client class (or classes) a `client` must be an instance of. */
  clientClass?: ClientClass | readonly ClientClass[];
  /** Alternative to `clientClass` that loads the library only when first needed. */
  loadClientClass?: () => ClientClass | readonly ClientClass[];
  /** Arguments for `new clientClass(...defaultArgs, defaultOptions)` when no client is given. */
  defaultArgs?: readonly unknown[];
  /** Options object appended to `defaultArgs` when creating the default client. */
  defaultOptions?: Record<string, unknown>;
  /** Creates the default client when no client is given (instead of `defaultArgs`). */
  createClient?: () => C;
  /**
   * Creates a client from connection settings (a URL, a server list, driver options), for
   * `SherlockModule.forRoot({ connection })`. Default: `new clientClass(connection)`.
   */
  connect?: (connection: unknown) => C;
  /** Closes a client this library created (on `shutdown()`). Default: `quit`/`close`/`end`. */
  closeClient?: (client: C) => void | Promise<void>;
  /**
   * Refuses a client of the right class whose settings would break the lock (throws a
   * TypeError naming the setting); called wherever a client is accepted.
   */
  checkClientSettings?: (client: C) => void;
}

/** A registered backend. Pass it (or its `name`) as `configure({ backend })`. */
export class BackendDefinition {
  readonly name: string;
  readonly library: string;
  readonly lockClass: LockClass;
  private classes: readonly ClientClass[] | undefined;
  private shared: object | undefined;

  /** @internal use `backends.register()` */
  constructor(private readonly registration: BackendRegistration<object>) {
    this.name = registration.name;
    this.library = registration.library;
    this.lockClass = registration.lockClass;
  }

  /** The accepted client classes; loads the driver (throws DriverMissingError if absent). */
  clientClasses(): readonly ClientClass[] {
    if (!this.classes) {
      const { clientClass, loadClientClass } = this.registration;
      const found = clientClass ?? loadClientClass?.() ?? [];
      this.classes = Array.isArray(found) ? found : [found as ClientClass];
    }
    return this.classes;
  }

  /** Whether `value` is a client of this backend's library (false if the driver is missing). */
  isClient(value: unknown): value is object {
    if (typeof value !== 'object' || value === null) return false;
    try {
      return this.clientClasses().some((cls) => value instanceof cls);
    } catch (err) {
      if (err instanceof DriverMissingError) return false;
      throw err;
    }
  }

  /** Throws a TypeError unless `value` is a client of this backend's library. */
  checkClient(value: unknown): object {
    if (this.isClient(value)) {
      this.registration.checkClientSettings?.(value);
      return value;
    }
    this.clientClasses(); // a missing driver is the better message
    const names = this.clientClasses()
      .map((cls) => cls.name)
      .join(' or ');
    throw new TypeError(messages.wrongClient(this.name, this.library, names, value));
  }

  /** The shared client this library creates (once) when a lock has no client of its own. */
  defaultClient(): object {
    this.shared ??= this.createDefault();
    return this.shared;
  }

  private createDefault(): object {
    const { createClient, defaultArgs = [], defaultOptions } = this.registration;
    if (createClient) return createClient();
    return this.construct(defaultOptions ? [...defaultArgs, defaultOptions] : [...defaultArgs]);
  }

  private construct(args: unknown[]): object {
    const [cls] = this.clientClasses();
    if (!cls) throw new TypeError(`Backend '${this.name}' has no client class to create`);
    return new (cls as unknown as new (...a: unknown[]) => object)(...args);
  }

  /**
   * A new client from connection settings (the caller owns it and closes it with `closeClient`);
   * with no settings, a client to the default address.
   */
  connect(connection?: unknown): object {
    const { connect } = this.registration;
    if (connect) return connect(connection);
    return connection === undefined ? this.createDefault() : this.construct([connection]);
  }

  /** Closes a client with this backend's `closeClient` (or `quit`/`close`/`end`). */
  async closeClient(client: object): Promise<void> {
    if (this.registration.closeClient) {
      await this.registration.closeClient(client);
      return;
    }
    const closable = client as { quit?: () => unknown; close?: () => unknown; end?: () => unknown };
    await (closable.quit ?? closable.close ?? closable.end)?.call(client);
  }

  /** Closes the shared client, if this library created one. */
  async closeDefaultClient(): Promise<void> {
    const client = this.shared;
    if (!client) return;
    this.shared = undefined;
    await this.closeClient(client);
  }
}

const byName = new Map<string, BackendDefinition>();
const byLockClass = new Map<LockClass, BackendDefinition>();

const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_]*$/;

function register<C extends object>(registration: BackendRegistration<C>): BackendDefinition {
  if (typeof registration !== 'object' || registration === null) {
    throw new TypeError(messages.invalidOption('registration', registration, 'an object'));
  }
  const { name, lockClass, library, clientClass, loadClientClass } = registration;
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new TypeError(
      messages.invalidOption(
        'name',
        name,
        'a name of letters, digits and _ starting with a letter',
      ),
    );
  }
  if (typeof lockClass !== 'function') {
    throw new TypeError(messages.invalidOption('lockClass', lockClass, 'a subclass of BaseLock'));
  }
  if (typeof library !== 'string' || library.length === 0) {
    throw new TypeError(
      messages.invalidOption('library', library, 'the npm name of the client library'),
    );
  }
  if ((clientClass === undefined) === (loadClientClass === undefined)) {
    throw new TypeError(
      messages.invalidOption(
        'clientClass',
        clientClass,
        'a client class (or an array of them); give exactly one of clientClass or loadClientClass',
      ),
    );
  }
  const key = name.toLowerCase();
  const existing = byName.get(key);
  if (existing) byLockClass.delete(existing.lockClass);
  const definition = new BackendDefinition(registration as unknown as BackendRegistration<object>);
  byName.set(key, definition);
  byLockClass.set(lockClass, definition);
  (backends as unknown as Record<string, unknown>)[name.toUpperCase()] = definition;
  return definition;
}

/** @internal makes `backends.<ALIAS>` and the name `alias` refer to `definition` too. */
export function registerAlias(alias: string, definition: BackendDefinition): void {
  byName.set(alias.toLowerCase(), definition);
  (backends as unknown as Record<string, unknown>)[alias.toUpperCase()] = definition;
}

/** Finds a backend by its name (case-insensitive) or returns the definition given. */
function resolve(backend: unknown): BackendDefinition {
  if (backend instanceof BackendDefinition) {
    if (byName.get(backend.name.toLowerCase()) === backend) return backend;
  } else if (typeof backend === 'string') {
    const found = byName.get(backend.toLowerCase());
    if (found) return found;
  }
  if (typeof backend === 'string' || backend instanceof BackendDefinition) {
    const shown = backend instanceof BackendDefinition ? backend.name : backend;
    throw new RangeError(messages.unknownBackend(shown, names()));
  }
  throw new TypeError(messages.unknownBackend(backend, names()));
}

function names(): string[] {
  return [...new Set([...byName.values()].map((d) => d.name))];
}

/** The backend whose lock class is `lockClass` or one of its ancestors. */
export function backendOfLockClass(lockClass: unknown): BackendDefinition | undefined {
  for (let cls = lockClass; typeof cls === 'function'; cls = Object.getPrototypeOf(cls)) {
    const found = byLockClass.get(cls as LockClass);
    if (found) return found;
  }
  return undefined;
}

/** Every registered backend, in registration order. */
export function registeredBackends(): BackendDefinition[] {
  return [...new Set(byName.values())];
}

/** The backend a client belongs to, by its class; throws a TypeError for an unknown object. */
export function backendOfClient(client: unknown): BackendDefinition {
  const found = registeredBackends().find((definition) => definition.isClient(client));
  if (found) {
    found.checkClient(client);
    return found;
  }
  throw new TypeError(
    messages.unknownClient(
      client,
      registeredBackends().map((d) => `${d.library} (${d.name})`),
    ),
  );
}

/**
 * The backend registry: the port of `sherlock.backends`. Built-in backends are
 * `backends.REDIS`, `backends.MEMCACHED` (alias `backends.MEMCACHE`), `backends.ETCD` and
 * `backends.MEMORY`, `backends.REDLOCK`; `backends.register()` adds yours as `backends.<NAME>`.
 *
 * @example
 * import { backends, configure } from 'nestjs-sherlock';
 * configure({ backend: backends.REDIS });
 */
export interface Backends {
  readonly REDIS: BackendDefinition;
  readonly MEMCACHED: BackendDefinition;
  readonly MEMCACHE: BackendDefinition;
  readonly ETCD: BackendDefinition;
  readonly MEMORY: BackendDefinition;
  readonly REDLOCK: BackendDefinition;
  /** Registers a backend; returns its definition, also reachable as `backends.<NAME>`. */
  register<C extends object>(registration: BackendRegistration<C>): BackendDefinition;
  /** Looks a backend up by name (case-insensitive); throws a RangeError if unknown. */
  get(name: string | BackendDefinition): BackendDefinition;
  /** The names of all registered backends. */
  names(): string[];
}

export const backends = { register, get: resolve, names } as unknown as Backends;
