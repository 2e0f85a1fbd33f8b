/**
 * What the contract kit is given: the test runner's functions (any runner) and the backend under
 * test with its fixtures (clients to a real server the author runs), and the per-`describe`
 * harness the contract groups share.
 */
import type { BaseLock, BaseLockOptions, DistributedLock } from '../core/base-lock.js';
import type { BackendCapabilities } from '../core/backend.js';
import type { BackendDefinition } from '../core/registry.js';
import { expect } from './expect.js';

/**
 * The functions of your test runner the suite registers its tests with. Vitest and Jest: pass
 * `{ describe, it, beforeAll, afterAll, afterEach }`; node:test: `{ describe, it, before, after,
 * afterEach }` (from `node:test`). Tests are registered as `it(name, fn)` with a zero-argument
 * async `fn`; give your runner a timeout of a minute (the expiry tests wait seconds).
 */
export type ContractRunner = {
  describe(name: string, body: () => void): unknown;
  it(name: string, test: () => Promise<void>): unknown;
  afterEach(hook: () => unknown): unknown;
} & (
  | { beforeAll(hook: () => unknown): unknown; afterAll(hook: () => unknown): unknown }
  | { before(hook: () => unknown): unknown; after(hook: () => unknown): unknown }
);

type Hook = () => unknown;

/** A lock (or permit) as the server inspector sees it: its key and its client. */
export interface LockOnServer {
  readonly key: string;
  readonly client: object;
}

/** Looks at the server directly, never through the library (optional: the tests it enables). */
export interface ServerInspector {
  /** The lock's remaining time to live at the server in ms; null: nobody holds it; -1: no expiry. */
  ttl(lock: LockOnServer): Promise<number | null>;
  /** Deletes the lock's key behind the library's back (what a lost lock looks like). */
  remove(lock: LockOnServer): Promise<void>;
}

/** The backend under test and how to reach its (real) server. */
export interface ContractSubject<C extends object = object> {
  /** The registered backend: what `backends.register()` returned (or `backends.get(name)`). */
  readonly backend: BackendDefinition;
  /** A new client to your test server (cross-process backends: each call, a new connection). */
  createClient(): C;
  /** Closes a client made by `createClient()` or `deadClient()`. */
  closeClient(client: C): void | Promise<void>;
  /**
   * A client to `127.0.0.1:port`, where nothing listens: enables the "server down" tests (a
   * backend without a server leaves it out).
   */
  deadClient?(port: number): C;
  /** Direct access to the server: enables the tests that check TTLs and keys deleted behind a lock's back. */
  readonly server?: ServerInspector;
  /** What joins namespace and name in a key (default `_`, as `formatKey` does by default). */
  readonly keySeparator?: string;
}

/** One `describe` block's view of the subject: capabilities, the lock class, short expiries. */
export interface SubjectInfo {
  readonly subject: ContractSubject;
  readonly name: string;
  readonly definition: BackendDefinition;
  readonly capabilities: BackendCapabilities;
  readonly LockClass: new (name: string, options?: BaseLockOptions) => BaseLock;
  readonly keySeparator: string;
  /** 1 s where the server counts ms, 2 s where it counts whole seconds. */
  readonly shortExpire: number;
}

export function infoOf(subject: ContractSubject): SubjectInfo {
  const definition = subject.backend;
  const { capabilities } = definition;
  return {
    subject,
    name: definition.name,
    definition,
    capabilities,
    LockClass: definition.lockClass as unknown as SubjectInfo['LockClass'],
    keySeparator: subject.keySeparator ?? '_',
    shortExpire: Math.max(1_000, 2 * capabilities.expiry.granularity),
  };
}

/** The runner with node:test's `before`/`after` read as `beforeAll`/`afterAll`. */
export interface Runner {
  describe(name: string, body: () => void): unknown;
  it(name: string, test: () => unknown): unknown;
  beforeAll(hook: Hook): unknown;
  afterAll(hook: Hook): unknown;
  afterEach(hook: Hook): unknown;
}

export function runnerOf(given: ContractRunner): Runner {
  const named = given as Partial<Record<'beforeAll' | 'afterAll' | 'before' | 'after', unknown>>;
  const pick = (a: 'beforeAll' | 'afterAll', b: 'before' | 'after'): ((hook: Hook) => unknown) => {
    const hook = named[a] ?? named[b];
    if (typeof hook !== 'function') {
      throw new TypeError(
        `Invalid 'runner': it has neither '${a}' nor '${b}'; pass your test runner's describe, it, ${a} (or ${b}), and afterEach`,
      );
    }
    return hook as (hook: Hook) => unknown;
  };
  for (const key of ['describe', 'it', 'afterEach'] as const) {
    if (typeof given[key] !== 'function') {
      throw new TypeError(
        `Invalid 'runner': '${key}' is ${typeof given[key]}; pass your test runner's describe, it, beforeAll (or before), afterAll (or after), and afterEach`,
      );
    }
  }
  return {
    describe: (name, body) => given.describe(name, body),
    it: (name, test) =>
      given.it(name, async () => {
        await test();
      }),
    beforeAll: pick('beforeAll', 'before'),
    afterAll: pick('afterAll', 'after'),
    afterEach: (hook) => given.afterEach(hook),
  };
}

/** The clients and lock lifecycles of one `describe` block. */
export interface BackendHarness {
  readonly client: object;
  /** A second client: "another process" (the same client for a backend that is not cross-process). */
  readonly otherClient: object;
  lock(name: string, options?: BaseLockOptions): BaseLock;
  otherLock(name: string, options?: BaseLockOptions): BaseLock;
  /** Takes `name` with a new lock object on the other client (asserts it got it). */
  hold(name: string, options?: BaseLockOptions): Promise<BaseLock>;
  /** Whether anyone holds `name`, as a fresh lock object on the other client sees it. */
  isLocked(name: string, options?: Pick<BaseLockOptions, 'namespace'>): Promise<boolean>;
  track<L extends DistributedLock>(lock: L): L;
}

/** Registers the hooks that give a `describe` block its clients and lock cleanup. */
export function useBackend(runner: Runner, info: SubjectInfo): BackendHarness {
  const { subject } = info;
  let client: object | undefined;
  let otherClient: object | undefined;
  const created: DistributedLock[] = [];

  runner.beforeAll(() => {
    client = subject.createClient();
    otherClient = info.capabilities.crossProcess ? subject.createClient() : client;
  });
  runner.afterEach(async () => {
    const stillHeld = created.splice(0).filter((lock) => lock.isAcquired);
    await Promise.allSettled(stillHeld.map((lock) => lock.release()));
  });
  runner.afterAll(async () => {
    for (const each of new Set([client, otherClient])) if (each) await subject.closeClient(each);
  });

  const ready = (value: object | undefined): object => {
    if (!value) throw new Error('the backend clients are created in beforeAll');
    return value;
  };
  const lockOn =
    (which: () => object) =>
    (name: string, options: BaseLockOptions = {}): BaseLock => {
      const lock = new info.LockClass(name, { client: which(), ...options });
      created.push(lock);
      return lock;
    };

  const harness: BackendHarness = {
    get client() {
      return ready(client);
    },
    get otherClient() {
      return ready(otherClient);
    },
    lock: lockOn(() => ready(client)),
    otherLock: lockOn(() => ready(otherClient)),
    async hold(name, options) {
      const holder = harness.otherLock(name, options);
      expect(await holder.acquire(false), `another object takes '${name}'`).toBe(true);
      return holder;
    },
    isLocked: (name, options = {}) => harness.otherLock(name, options).locked(),
    track(lock) {
      created.push(lock);
      return lock;
    },
  };
  return harness;
}

/** Cleanups to run after the current test (what Vitest's onTestFinished does), for any runner. */
export function useCleanups(runner: Runner): (cleanup: () => unknown) => void {
  const pending: (() => unknown)[] = [];
  runner.afterEach(async () => {
    for (const cleanup of pending.splice(0).reverse()) await Promise.resolve().then(cleanup);
  });
  return (cleanup) => void pending.push(cleanup);
}
