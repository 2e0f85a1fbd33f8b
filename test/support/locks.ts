/**
 * The lifecycles of the clients and locks one test makes, over the backend table: `scope`
 * (released and closed when the test finishes, for the tests of a file that run concurrently). A
 * backend that is not cross-process (memory) has one client per test: its "clients" are lock
 * objects sharing a store, as processes share a server. (A `describe` block's clients and locks,
 * `useBackend`, are the contract kit's: lib/testing/subject.ts.)
 */
import type { BaseLock, BaseLockOptions } from 'nestjs-sherlock';
import type { TestContext } from 'vitest';

import { type BackendFixture, type BackendName, fixture } from './backends.js';

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
