/**
 * Shared helpers of the conformance suite (test/conformance/*.spec.ts): one harness per backend
 * fixture (clients created in beforeAll, closed in afterAll, locks left held released after each
 * test), monotonic timing and error-capturing helpers, and the tables of invalid options.
 */
import { Redis } from 'ioredis';
import memjs from 'memjs';
import type {
  BaseLock,
  BaseLockOptions,
  DistributedLock,
  SherlockConfiguration,
} from 'nestjs-sherlock';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';

import type { BackendFixture, BackendName } from '../support/backends.js';

export { delay };

/** Generous slack added to every upper time bound: the machine is shared and noisy. */
export const SLACK_MS = 5_000;

/** What joins namespace and name in a lock's key. */
export const KEY_SEPARATOR: Record<BackendName, string> = {
  redis: '_',
  memcached: '_',
  memory: '_',
  etcd: '/',
  etcdhttp: '/',
  redlock: '_',
};

export interface BackendHarness {
  /** The main client to the test server. */
  readonly client: object;
  /**
   * A second client playing "another process": its own connection to the same server (the same
   * store for the in-process memory backend, whose stores do not share locks).
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
export function useBackend(fixture: BackendFixture): BackendHarness {
  let client: object | undefined;
  let otherClient: object | undefined;
  const created: DistributedLock[] = [];

  beforeAll(() => {
    client = fixture.createClient();
    otherClient = fixture.crossProcess ? fixture.createClient() : client;
  });
  afterEach(async () => {
    const stillHeld = created.splice(0).filter((lock) => lock.isAcquired);
    await Promise.allSettled(stillHeld.map((lock) => lock.release()));
  });
  afterAll(async () => {
    const clients = new Set([client, otherClient]);
    for (const each of clients) if (each) await fixture.closeClient(each);
  });

  const ready = (value: object | undefined): object => {
    if (!value) throw new Error('the backend clients are created in beforeAll');
    return value;
  };
  const lockOn =
    (which: () => object) =>
    (name: string, options: BaseLockOptions = {}): BaseLock => {
      const lock = new fixture.LockClass(name, { client: which(), ...options });
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

/** Runs `run` and returns its result and how long it took (monotonic ms). */
export async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = performance.now();
  const value = await run();
  return { value, ms: performance.now() - start };
}

/**
 * Runs `run`, asserts it rejects with an instance of `type`, and returns the error and how long
 * the rejection took (monotonic ms).
 */
export async function rejectsWith<E extends Error>(
  type: new (...args: never[]) => E,
  run: () => Promise<unknown>,
): Promise<{ error: E; ms: number }> {
  const start = performance.now();
  let caught: { error: unknown } | undefined;
  try {
    await run();
  } catch (error) {
    caught = { error };
  }
  const ms = performance.now() - start;
  if (!caught) return expect.unreachable(`expected a rejection with ${type.name}, but it resolved`);
  expect(caught.error).toBeInstanceOf(type);
  return { error: caught.error as E, ms };
}

/** Calls `run`, asserts it throws an instance of `type` synchronously, and returns the error. */
export function throwsWith<E extends Error>(
  type: new (...args: never[]) => E,
  run: () => unknown,
): E {
  let caught: { error: unknown } | undefined;
  try {
    run();
  } catch (error) {
    caught = { error };
  }
  if (!caught) return expect.unreachable(`expected a ${type.name} to be thrown, but nothing was`);
  expect(caught.error).toBeInstanceOf(type);
  return caught.error as E;
}

/** How an invalid value shows up in an error message (a string quoted, anything else as is). */
export function shown(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

export interface BadOption {
  readonly option: string;
  readonly value: unknown;
  readonly type: typeof TypeError | typeof RangeError;
}

/** Invalid values of the lock options, refused by every lock class and by configure(). */
export const BAD_OPTIONS: readonly BadOption[] = [
  { option: 'expire', value: 0, type: RangeError },
  { option: 'expire', value: -1, type: RangeError },
  { option: 'expire', value: NaN, type: RangeError },
  { option: 'expire', value: Infinity, type: RangeError },
  { option: 'expire', value: '100', type: TypeError },
  { option: 'timeout', value: -1, type: RangeError },
  { option: 'retryInterval', value: NaN, type: RangeError },
  { option: 'operationTimeout', value: 0, type: RangeError },
  { option: 'namespace', value: '', type: RangeError },
];

/** Asserts a validation error names the option and shows the value it got. */
export function expectOptionError(error: Error, { option, value }: BadOption): void {
  expect(error.message).toContain(`'${option}'`);
  expect(error.message).toContain(shown(value));
}

export interface ForeignClient {
  readonly client: object;
  close(): void;
}

/**
 * A real client of another backend's library, which never connects: a memjs client for the redis
 * backend, a lazy ioredis client for every other one.
 */
export function foreignClient(fixture: BackendFixture): ForeignClient {
  if (fixture.name === 'redis') {
    const client = memjs.Client.create('127.0.0.1:1', { logger: { log: () => undefined } });
    return { client, close: () => client.close() };
  }
  const client = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true });
  return { client, close: () => client.disconnect() };
}

/** Asserts the configuration is field for field the one captured in `before`. */
export function expectConfigurationUnchanged(
  current: SherlockConfiguration,
  before: SherlockConfiguration,
): void {
  for (const key of Object.keys(before) as (keyof SherlockConfiguration)[]) {
    expect(current[key], `configuration.${key}`).toBe(before[key]);
  }
  expect(Object.keys(current).sort()).toEqual(Object.keys(before).sort());
}
