/**
 * The lifecycles of the clients and locks a test makes, over the backend table: `useBackend` for a
 * `describe` block (clients made in beforeAll, closed in afterAll, locks left held released after
 * each test), `scope` for one test (released and closed when it finishes, for the tests of a file
 * that run concurrently). A backend that is not cross-process (memory) has one client per block
 * or per test: its "clients" are lock objects sharing a store, as processes share a server.
 */
import type { BaseLock, BaseLockOptions, DistributedLock } from 'nestjs-sherlock';
import type { TestContext } from 'vitest';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';

import { type BackendFixture, type BackendName, fixture } from './backends.js';

export interface BackendHarness {
  /** The main client to the test server. */
  readonly client: object;
  /**
   * A second client playing "another process": its own connection to the same server (the same
   * client for a backend that is not cross-process, whose clients do not share locks).
   */
  readonly otherClient: object;
  /** A lock object on the main client; released after the test if still held. */
  lock(name: string, options?: BaseLockOptions): BaseLock;
  /** A lock object on the other client; released after the test if still held. */
  otherLock(name: string, options?: BaseLockOptions): BaseLock;
  /** Takes `name` with a new lock object on the other client (asserts it got it). */
  hold(name: string, options?: BaseLockOptions): Promise<BaseLock>;
  /** Whether anyone holds `name`, as seen by a fresh lock object on the other client. */
  isLocked(name: string, options?: Pick<BaseLockOptions, 'namespace'>): Promise<boolean>;
  /** Has a lock made elsewhere (generic Lock, no client) released after the test if still held. */
  track<L extends DistributedLock>(lock: L): L;
}

/**
 * Registers the hooks that give a `describe` block its clients and lock cleanup. A block that also
 * resets the configuration after each test registers that hook before calling this: after-hooks
 * run in reverse order, so locks using the configured client are released while it is still set.
 */
export function useBackend(backend: BackendFixture): BackendHarness {
  let client: object | undefined;
  let otherClient: object | undefined;
  const created: DistributedLock[] = [];

  beforeAll(() => {
    client = backend.createClient();
    otherClient = backend.capabilities.crossProcess ? backend.createClient() : client;
  });
  afterEach(async () => {
    const stillHeld = created.splice(0).filter((lock) => lock.isAcquired);
    await Promise.allSettled(stillHeld.map((lock) => lock.release()));
  });
  afterAll(async () => {
    const clients = new Set([client, otherClient]);
    for (const each of clients) if (each) await backend.closeClient(each);
  });

  const ready = (value: object | undefined): object => {
    if (!value) throw new Error('the backend clients are created in beforeAll');
    return value;
  };
  const lockOn =
    (which: () => object) =>
    (name: string, options: BaseLockOptions = {}): BaseLock => {
      const lock = new backend.LockClass(name, { client: which(), ...options });
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

type Backend = BackendName | BackendFixture;

/** What one test made: released / closed when it finishes (passed or failed). */
export interface Scope {
  /**
   * A new client of the backend (closed after the test); for a backend that is not cross-process,
   * the one client of this scope.
   */
  client(backend: Backend): object;
  /** A lock on `client` (default: a new client), released after the test if still held. */
  lock(backend: Backend, name: string, options?: BaseLockOptions, client?: object): BaseLock;
  /** Runs `cleanup` after the test, before the clients are closed. */
  defer(cleanup: () => unknown): void;
}

/** A scope for the test whose context's `onTestFinished` is given. */
export function scope(onTestFinished: TestContext['onTestFinished']): Scope {
  const locks: BaseLock[] = [];
  const clients: { backend: BackendFixture; client: object }[] = [];
  const shared = new Map<BackendName, object>();
  const deferred: (() => unknown)[] = [];
  onTestFinished(async () => {
    await Promise.allSettled(locks.filter((l) => l.isAcquired).map((l) => l.release()));
    for (const cleanup of deferred.reverse()) await Promise.resolve().then(cleanup);
    await Promise.allSettled(clients.map(({ backend, client }) => backend.closeClient(client)));
  });
  const made: Scope = {
    client(backend) {
      const found = fixture(backend);
      const existing = shared.get(found.name);
      if (existing) return existing;
      const client = found.createClient();
      clients.push({ backend: found, client });
      if (!found.capabilities.crossProcess) shared.set(found.name, client);
      return client;
    },
    lock(backend, name, options = {}, client = made.client(backend)) {
      const lock = new (fixture(backend).LockClass)(name, { ...options, client });
      locks.push(lock);
      return lock;
    },
    defer(cleanup) {
      deferred.push(cleanup);
    },
  };
  return made;
}
