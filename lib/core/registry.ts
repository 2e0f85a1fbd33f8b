import {
  type AttemptOutcome,
  type BackendCapabilities,
  type ClientClass,
  type LockBackend,
  type LockTarget,
} from './backend.js';
import type { ConnectionSettings } from './connection.js';
import { listenForErrors } from './client-errors.js';
import { DriverMissingError } from './errors/driver-missing.error.js';
import { defaultManager } from './manager.js';
import { messages } from './messages.js';
import type { LockOptions } from './options.js';

export type { ClientClass };

/** A lock class a backend provides: `new lockClass(name, options)`. */
export type LockClass = new (
  name: string,
  options?: LockOptions & { client?: object },
) => { readonly name: string };

/**
 * What `backends.register()` takes in sherlock's style: a subclass of `BaseLock` implementing
 * `_acquire`, `_release` and `_locked` (and optionally `_extend`), and how to make its client.
 * The port of sherlock's `backends.register(name, lock_class, library, client_class,
 * default_args, default_kwargs)`. A backend written as a `LockBackend` object is registered as is.
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
   * `SherlockModule.forRoot({ connection })` and `new LockManager({ connection })`.
   * Default: `new clientClass(connection)`.
   */
  connect?: (connection: unknown) => C;
  /** Closes a client this library created. Default: `quit`/`close`/`end`. */
  closeClient?: (client: C) => void | Promise<void>;
  /** Refuses a client of the right class whose settings would break the lock (throws a TypeError). */
  checkClientSettings?: (client: C) => void;
  /**
   * What the backend can do, when it differs from the defaults: no fencing, `extend` when the
   * class has `_extend`, polling, cross-process, expiries in ms with no limit.
   */
  capabilities?: Partial<BackendCapabilities>;
}

/** A `LockBackend` to register, optionally with the lock class that `new Lock()` proxies to. */
export type BackendDeclaration<C extends object = object> = LockBackend<C, unknown, unknown> & {
  /** The class of this backend's locks (a `BaseLock` subclass adding nothing); made if absent. */
  readonly lockClass?: LockClass;
};

/** The default capabilities of a sherlock-style registration. */
const LEGACY_CAPABILITIES: BackendCapabilities = Object.freeze({
  fencing: false,
  extend: false,
  handOff: 'poll',
  crossProcess: true,
  expiry: Object.freeze({ granularity: 1, minimum: 1, maximum: null, earlyBy: 0 }),
});

/** A lock class written sherlock's way: its instances implement the primitives themselves. */
interface PrimitiveLock {
  _acquire(token: string): Promise<boolean | { fencingToken?: string; since?: number }>;
  _release(token: string): Promise<boolean>;
  _locked(): Promise<boolean>;
  _extend(token: string, ttl: number): Promise<boolean>;
}

/** Whether `lockClass`'s instances implement `method` themselves (not BaseLock's default). */
function implementsOwn(lockClass: LockClass, method: keyof PrimitiveLock): boolean {
  for (
    let proto = lockClass.prototype as object | null;
    proto;
    proto = Object.getPrototypeOf(proto)
  ) {
    const marker = Object.prototype.hasOwnProperty.call(proto.constructor, BASE_MARK);
    if (Object.prototype.hasOwnProperty.call(proto, method)) return !marker;
    if (marker) return false;
  }
  return false;
}

/** Set on BaseLock (by base-lock.ts) so the registry can tell its own methods apart. */
export const BASE_MARK = Symbol('nestjs-sherlock.BaseLock');

/** The primitives of a sherlock-style lock class, as a `LockBackend`'s. */
function primitivesOf(lockClass: LockClass, extend: boolean) {
  const self = (lock: LockTarget) => lock as unknown as PrimitiveLock;
  return {
    acquire: async (lock: LockTarget, token: string): Promise<AttemptOutcome> => {
      const result = await self(lock)._acquire(token);
      if (typeof result !== 'object' || result === null) return result === true;
      return { granted: true, fencingToken: result.fencingToken, since: result.since };
    },
    release: (lock: LockTarget, token: string) => self(lock)._release(token),
    locked: (lock: LockTarget) => self(lock)._locked(),
    ...(extend
      ? { extend: (lock: LockTarget, token: string, ttl: number) => self(lock)._extend(token, ttl) }
      : {}),
    lockClass,
  };
}

/** A registered backend. Pass it (or its `name`) as `configure({ backend })`. */
export class BackendDefinition {
  readonly name: string;
  readonly library: string;
  readonly lockClass: LockClass;
  readonly capabilities: BackendCapabilities;
  /** @internal the primitives the core calls. */
  readonly impl: LockBackend<object, unknown, unknown>;
  private classes: readonly ClientClass[] | undefined;

  /** @internal use `backends.register()` */
  constructor(impl: LockBackend<object, unknown, unknown>, lockClass: LockClass) {
    this.impl = impl;
    this.name = impl.name;
    this.library = impl.library;
    this.capabilities = impl.capabilities;
    this.lockClass = lockClass;
  }

  /** The accepted client classes; loads the driver (throws DriverMissingError if absent). */
  clientClasses(): readonly ClientClass[] {
    if (!this.classes) {
      const found = this.impl.clientClass();
      this.classes = Array.isArray(found) ? [...found] : [found as ClientClass];
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

  /** Throws a TypeError unless `value` is a client of this backend's library with safe settings. */
  checkClient(value: unknown): object {
    if (this.isClient(value)) {
      this.impl.checkClient?.(value);
      return value;
    }
    const names = this.clientClasses() // a missing driver is the better message
      .map((cls) => cls.name)
      .join(' or ');
    throw new TypeError(messages.wrongClient(this.name, this.library, names, value));
  }

  /**
   * The client shared by the locks of this backend that have none of their own (made on first
   * use, closed by `shutdown()`).
   */
  defaultClient(): object {
    return defaultManager().sharedClient(this);
  }

  /**
   * A new client from connection settings (the caller owns it and closes it with `closeClient`);
   * with no settings, a client to the default address.
   */
  connect(connection?: ConnectionSettings): object {
    // Its errors surface as the locks' typed errors: never as an unhandled 'error' event.
    return listenForErrors(this.impl.connect(connection));
  }

  /** Closes a client with this backend's `close` (or `quit`/`close`/`end`). */
  async closeClient(client: object): Promise<void> {
    if (this.impl.close) {
      await this.impl.close(client);
      return;
    }
    const closable = client as { quit?: () => unknown; close?: () => unknown; end?: () => unknown };
    await (closable.quit ?? closable.close ?? closable.end)?.call(client);
  }
}

const byName = new Map<string, BackendDefinition>();
const byLockClass = new Map<LockClass, BackendDefinition>();
/** Backends made on the fly for lock classes nobody registered (used with their own client). */
const unregistered = new WeakMap<LockClass, BackendDefinition>();

const NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_]*$/;

function checkRegistration(registration: object): void {
  const { name, library, lockClass } = registration as Record<string, unknown>;
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new TypeError(
      messages.invalidOption(
        'name',
        name,
        'a name of letters, digits and _ starting with a letter',
      ),
    );
  }
  if (typeof library !== 'string' || library.length === 0) {
    throw new TypeError(
      messages.invalidOption('library', library, 'the npm name of the client library'),
    );
  }
  if (lockClass !== undefined && typeof lockClass !== 'function') {
    throw new TypeError(messages.invalidOption('lockClass', lockClass, 'a subclass of BaseLock'));
  }
}

/** A `LockBackend` from a sherlock-style registration. */
function fromRegistration(registration: BackendRegistration<object>): LockBackend {
  const { name, lockClass, library, clientClass, loadClientClass } = registration;
  if ((clientClass === undefined) === (loadClientClass === undefined)) {
    throw new TypeError(
      messages.invalidOption(
        'clientClass',
        clientClass,
        'a client class (or an array of them); give exactly one of clientClass or loadClientClass',
      ),
    );
  }
  for (const method of ['_acquire', '_release', '_locked'] as const) {
    if (!implementsOwn(lockClass, method)) {
      throw new TypeError(
        messages.invalidOption(
          'lockClass',
          lockClass,
          `a subclass of BaseLock implementing _acquire, _release and _locked (${lockClass.name} has no ${method})`,
        ),
      );
    }
  }
  const canExtend = implementsOwn(lockClass, '_extend');
  const capabilities: BackendCapabilities = Object.freeze({
    ...LEGACY_CAPABILITIES,
    extend: canExtend,
    ...registration.capabilities,
  });
  const { createClient, defaultArgs = [], defaultOptions, connect, closeClient } = registration;
  const classes = () =>
    clientClass ?? (loadClientClass as () => ClientClass | readonly ClientClass[])();
  const construct = (args: unknown[]): object => {
    const found = classes();
    const [cls] = Array.isArray(found) ? found : [found];
    return new (cls as unknown as new (...a: unknown[]) => object)(...args);
  };
  const makeDefault = (): object =>
    createClient
      ? createClient()
      : construct(defaultOptions ? [...defaultArgs, defaultOptions] : [...defaultArgs]);
  return {
    name,
    library,
    capabilities,
    clientClass: classes,
    connect: (connection) =>
      connect
        ? connect(connection)
        : connection === undefined
          ? makeDefault()
          : construct([connection]),
    ...(closeClient ? { close: closeClient } : {}),
    ...(registration.checkClientSettings ? { checkClient: registration.checkClientSettings } : {}),
    ...primitivesOf(lockClass, canExtend),
  };
}

/** Checks that a `LockBackend`'s capabilities match what it implements. */
function checkDeclaration(backend: LockBackend): void {
  const caps = backend.capabilities as Partial<BackendCapabilities> | undefined;
  const bad = (option: string, value: unknown, allowed: string) => {
    throw new TypeError(messages.invalidOption(option, value, allowed));
  };
  if (typeof caps !== 'object' || caps === null) {
    bad('capabilities', caps, 'an object: { fencing, extend, handOff, crossProcess, expiry }');
    return;
  }
  for (const primitive of ['acquire', 'release', 'locked', 'connect', 'clientClass'] as const) {
    if (typeof backend[primitive] !== 'function') bad(primitive, backend[primitive], 'a function');
  }
  if (caps.extend !== (typeof backend.extend === 'function')) {
    bad(
      'capabilities.extend',
      caps.extend,
      `${typeof backend.extend === 'function'}: it must say whether extend is implemented`,
    );
  }
  if ((caps.handOff === 'push') !== (backend.handOff !== undefined)) {
    bad(
      'capabilities.handOff',
      caps.handOff,
      backend.handOff ? "'push' (handOff is implemented)" : "'poll' (no handOff is implemented)",
    );
  }
  if (typeof caps.fencing !== 'boolean') bad('capabilities.fencing', caps.fencing, 'true or false');
  checkSemaphoreDeclaration(backend, caps as BackendCapabilities, bad);
  checkReadWriteDeclaration(backend, caps as BackendCapabilities, bad);
  if (typeof caps.crossProcess !== 'boolean')
    bad('capabilities.crossProcess', caps.crossProcess, 'true or false');
  const expiry = caps.expiry;
  if (
    typeof expiry !== 'object' ||
    expiry === null ||
    !(expiry.granularity >= 1) ||
    !(expiry.minimum >= 1) ||
    !(expiry.earlyBy >= 0) ||
    !(expiry.maximum === null || expiry.maximum >= expiry.minimum)
  ) {
    bad(
      'capabilities.expiry',
      expiry,
      '{ granularity >= 1, minimum >= 1, maximum: null or >= minimum, earlyBy >= 0 } in ms',
    );
  }
}

/**
 * Checks a backend's semaphore against its capabilities: `capabilities.semaphore` says whether
 * `semaphore` is implemented, and the other capabilities hold for it too (extend, push hand-off).
 */
function checkSemaphoreDeclaration(
  backend: LockBackend,
  caps: BackendCapabilities,
  bad: (option: string, value: unknown, allowed: string) => void,
): void {
  const declared = caps.semaphore ?? false;
  const semaphore = backend.semaphore;
  if (typeof declared !== 'boolean') {
    bad('capabilities.semaphore', declared, 'true, false or absent');
  }
  if (declared !== (semaphore !== undefined)) {
    bad(
      'capabilities.semaphore',
      caps.semaphore,
      `${semaphore !== undefined}: it must say whether semaphore is implemented`,
    );
  }
  const reason = backend.unsupported?.semaphore;
  if (reason !== undefined && (typeof reason !== 'string' || reason.length === 0)) {
    bad('unsupported.semaphore', reason, 'a non-empty string saying why');
  }
  if (!semaphore) return;
  for (const primitive of ['acquire', 'release', 'count'] as const) {
    if (typeof semaphore[primitive] !== 'function') {
      bad(`semaphore.${primitive}`, semaphore[primitive], 'a function');
    }
  }
  if (caps.extend !== (typeof semaphore.extend === 'function')) {
    bad(
      'semaphore.extend',
      semaphore.extend,
      caps.extend
        ? 'a function (capabilities.extend is true: permits are extended like locks)'
        : 'absent (capabilities.extend is false)',
    );
  }
  if ((caps.handOff === 'push') !== (semaphore.handOff !== undefined)) {
    bad(
      'semaphore.handOff',
      semaphore.handOff,
      caps.handOff === 'push'
        ? "an implementation (capabilities.handOff is 'push': waiters for a permit are woken too)"
        : "absent (capabilities.handOff is 'poll')",
    );
  }
}

/** Checks a backend's read-write lock against its capabilities, as for the semaphore. */
function checkReadWriteDeclaration(
  backend: LockBackend,
  caps: BackendCapabilities,
  bad: (option: string, value: unknown, allowed: string) => void,
): void {
  const declared = caps.readWrite ?? false;
  const readWrite = backend.readWrite;
  if (typeof declared !== 'boolean') {
    bad('capabilities.readWrite', declared, 'true, false or absent');
  }
  if (declared !== (readWrite !== undefined)) {
    bad(
      'capabilities.readWrite',
      caps.readWrite,
      `${readWrite !== undefined}: it must say whether readWrite is implemented`,
    );
  }
  const reason = backend.unsupported?.readWrite;
  if (reason !== undefined && (typeof reason !== 'string' || reason.length === 0)) {
    bad('unsupported.readWrite', reason, 'a non-empty string saying why');
  }
  if (!readWrite) return;
  for (const primitive of ['acquire', 'release', 'state'] as const) {
    if (typeof readWrite[primitive] !== 'function') {
      bad(`readWrite.${primitive}`, readWrite[primitive], 'a function');
    }
  }
  if (caps.extend !== (typeof readWrite.extend === 'function')) {
    bad(
      'readWrite.extend',
      readWrite.extend,
      caps.extend
        ? 'a function (capabilities.extend is true: holdings are extended like locks)'
        : 'absent (capabilities.extend is false)',
    );
  }
  if ((caps.handOff === 'push') !== (readWrite.handOff !== undefined)) {
    bad(
      'readWrite.handOff',
      readWrite.handOff,
      caps.handOff === 'push'
        ? "an implementation (capabilities.handOff is 'push': waiters are woken too)"
        : "absent (capabilities.handOff is 'poll')",
    );
  }
}

/** Makes the lock class of a backend declared without one: a `BaseLock` that adds nothing. */
let makeLockClass: (name: string) => LockClass = () => {
  throw new Error('BaseLock is not loaded');
};

/** @internal base-lock.ts hands over how to make a lock class. */
export function setLockClassMaker(maker: (name: string) => LockClass): void {
  makeLockClass = maker;
}

function register<C extends object>(
  registration: BackendRegistration<C> | BackendDeclaration<C>,
): BackendDefinition {
  if (typeof registration !== 'object' || registration === null) {
    throw new TypeError(messages.invalidOption('registration', registration, 'an object'));
  }
  checkRegistration(registration);
  const declared = typeof (registration as BackendDeclaration<C>).acquire === 'function';
  let impl: LockBackend;
  let lockClass: LockClass;
  if (declared) {
    impl = registration as unknown as LockBackend;
    checkDeclaration(impl);
    lockClass =
      (registration as BackendDeclaration<C>).lockClass ??
      makeLockClass(`${impl.name[0]?.toUpperCase()}${impl.name.slice(1)}Lock`);
  } else {
    const legacy = registration as BackendRegistration<C>;
    if (typeof legacy.lockClass !== 'function') {
      throw new TypeError(
        messages.invalidOption('lockClass', legacy.lockClass, 'a subclass of BaseLock'),
      );
    }
    impl = fromRegistration(legacy as unknown as BackendRegistration<object>);
    lockClass = legacy.lockClass;
  }
  const key = impl.name.toLowerCase();
  const existing = byName.get(key);
  if (existing) byLockClass.delete(existing.lockClass);
  const definition = new BackendDefinition(impl, lockClass);
  byName.set(key, definition);
  byLockClass.set(lockClass, definition);
  (backends as unknown as Record<string, unknown>)[impl.name.toUpperCase()] = definition;
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

/**
 * The backend of a lock class: the registered one of the class or of an ancestor, else (a
 * sherlock-style class nobody registered, used with its own `client`) one made from the class.
 */
export function backendOfLockClass(lockClass: LockClass): BackendDefinition {
  for (let cls: unknown = lockClass; typeof cls === 'function'; cls = Object.getPrototypeOf(cls)) {
    const found = byLockClass.get(cls as LockClass);
    if (found) return found;
  }
  let made = unregistered.get(lockClass);
  if (!made) {
    const impl = fromRegistration({
      name: lockClass.name || 'custom',
      lockClass,
      library: lockClass.name || 'custom',
      clientClass: Object as unknown as ClientClass,
    });
    made = new BackendDefinition(impl, lockClass);
    unregistered.set(lockClass, made);
  }
  return made;
}

/** Whether `definition` is registered (a class nobody registered has one made on the fly). */
export function isRegistered(definition: BackendDefinition): boolean {
  return byName.get(definition.name.toLowerCase()) === definition;
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
 * `backends.REDIS`, `backends.MEMCACHED` (alias `backends.MEMCACHE`), `backends.ETCD`,
 * `backends.MEMORY`, `backends.REDLOCK`, `backends.THREADS` and `backends.CLUSTER`; `backends.register()` adds yours as
 * `backends.<NAME>`.
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
  readonly THREADS: BackendDefinition;
  readonly CLUSTER: BackendDefinition;
  readonly POSTGRES: BackendDefinition;
  readonly ZOOKEEPER: BackendDefinition;
  /**
   * Registers a backend, written as a `LockBackend` object (see `nestjs-sherlock/backend`) or
   * sherlock's way (a `BaseLock` subclass and its client class); returns its definition, also
   * reachable as `backends.<NAME>`.
   */
  register<C extends object>(
    registration: BackendRegistration<C> | BackendDeclaration<C>,
  ): BackendDefinition;
  /** Looks a backend up by name (case-insensitive); throws a RangeError if unknown. */
  get(name: string | BackendDefinition): BackendDefinition;
  /** The names of all registered backends. */
  names(): string[];
}

export const backends = { register, get: resolve, names } as unknown as Backends;
