/**
 * Shared helpers of the Nest module tests (test/nest/*.spec.ts): applications that are always
 * closed, probes that look at the real servers through clients of their own ("another process"),
 * a logger that records what the module logs, gates and polling.
 */
import type { INestApplication, LoggerService, ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ClientClosedError, Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import memjs from 'memjs';
import {
  backends,
  type BaseLock,
  type BaseLockOptions,
  type ConnectionSettings,
  EtcdLock,
  MemcachedLock,
  MemoryLock,
  RedisLock,
} from 'nestjs-sherlock';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { etcdHosts, memcachedServerList, redisUrl } from '../support/env.js';

export { delay, uniqueName };

export type ServerBackend = 'redis' | 'memcached' | 'etcd';
export type NestBackend = ServerBackend | 'memory';

export const SERVER_BACKENDS: readonly ServerBackend[] = ['redis', 'memcached', 'etcd'];
export const ALL_BACKENDS: readonly NestBackend[] = ['memory', ...SERVER_BACKENDS];

/** The `connection` setting of each server backend, pointing at the test servers. */
export const connections: Record<ServerBackend, () => ConnectionSettings> = {
  redis: () => redisUrl(),
  memcached: () => memcachedServerList(),
  etcd: () => etcdHosts(),
};

/** `forRoot()` options for `backend` on the test servers (memory: the process-wide store). */
export function backendOptions(backend: NestBackend): {
  backend: NestBackend;
  connection?: ConnectionSettings;
} {
  return backend === 'memory' ? { backend } : { backend, connection: connections[backend]() };
}

const quietLogger = { log: () => undefined };

/** Whether a client is usable ('open'), closed for good ('closed'), or in between. */
export type ClientState = 'open' | 'closed' | 'other';

/** How to make, close and inspect a client of a server backend's library. */
export const clients: Record<
  ServerBackend,
  {
    create(): object;
    close(client: object): Promise<void>;
    state(client: object): Promise<ClientState>;
  }
> = {
  redis: {
    create: () => new Redis(redisUrl()),
    close: async (client) => (client as Redis).disconnect(),
    state: async (client) => {
      const { status } = client as Redis;
      return status === 'ready' ? 'open' : status === 'end' ? 'closed' : 'other';
    },
  },
  memcached: {
    create: () => memjs.Client.create(memcachedServerList().join(','), { logger: quietLogger }),
    close: async (client) => (client as memjs.Client).close(),
    // memjs reconnects on the next command after close(): look at its sockets instead.
    state: async (client) => {
      const connected = (client as memjs.Client).servers.map((server) => server.connected);
      if (connected.every(Boolean)) return 'open';
      return connected.some(Boolean) ? 'other' : 'closed';
    },
  },
  etcd: {
    create: () => new Etcd3({ hosts: etcdHosts() }),
    close: async (client) => (client as Etcd3).close(),
    state: async (client) =>
      (client as Etcd3)
        .get('nestjs-sherlock-probe')
        .string()
        .then(
          (): ClientState => 'open',
          (err: unknown): ClientState => (err instanceof ClientClosedError ? 'closed' : 'other'),
        ),
  },
};

/** The lock class of each backend. */
export const lockClasses: Record<
  NestBackend,
  new (name: string, options?: BaseLockOptions) => BaseLock
> = {
  redis: RedisLock,
  memcached: MemcachedLock,
  etcd: EtcdLock,
  memory: MemoryLock,
};

/** Looks at a backend through a client of its own, as another process would. */
export interface Probe {
  /** A lock object on the probe's client. */
  lock(name: string, options?: BaseLockOptions): BaseLock;
  /** Takes `name` on the probe's client (released after the test if still held). */
  hold(name: string, options?: BaseLockOptions): Promise<BaseLock>;
  /** Whether anyone holds `name` on the server. */
  isLocked(name: string, namespace?: string): Promise<boolean>;
}

/**
 * A probe for `backend`, with its client created in `beforeAll` and closed in `afterAll`. The
 * memory backend has no server: its probe uses the process-wide store that modules share.
 */
export function useProbe(backend: NestBackend): Probe {
  let client: object | undefined;
  const held: BaseLock[] = [];
  beforeAll(() => {
    client = backend === 'memory' ? backends.MEMORY.defaultClient() : clients[backend].create();
  });
  afterEach(async () => {
    const stillHeld = held.splice(0).filter((lock) => lock.isAcquired);
    await Promise.allSettled(stillHeld.map((lock) => lock.release()));
  });
  afterAll(async () => {
    if (client && backend !== 'memory') await clients[backend].close(client);
  });
  const probe: Probe = {
    lock(name, options = {}) {
      if (!client) throw new Error('the probe client is created in beforeAll');
      return new lockClasses[backend](name, { ...options, client });
    },
    async hold(name, options = {}) {
      const lock = probe.lock(name, options);
      expect(await lock.acquire(false), `the probe could not take '${name}'`).toBe(true);
      held.push(lock);
      return lock;
    },
    async isLocked(name, namespace) {
      return probe.lock(name, namespace === undefined ? {} : { namespace }).locked();
    },
  };
  return probe;
}

/** Starts Nest applications and closes every one still open after each test. */
export interface Apps {
  /**
   * Compiles `metadata` into an application, initialises it (and listens on a free port of
   * 127.0.0.1 with `listen`), and returns it.
   */
  start(
    metadata: ModuleMetadata,
    options?: { logger?: LoggerService; listen?: boolean },
  ): Promise<INestApplication>;
  /** Closes `app` now (afterEach does not close it again). */
  close(app: INestApplication): Promise<void>;
}

export function useApps(): Apps {
  const open = new Set<INestApplication>();
  afterEach(async () => {
    const apps = [...open];
    open.clear();
    await Promise.all(apps.map((app) => app.close()));
  });
  return {
    async start(metadata, { logger, listen = false } = {}) {
      const moduleRef = await Test.createTestingModule(metadata).compile();
      const app = moduleRef.createNestApplication();
      if (logger) app.useLogger(logger);
      open.add(app);
      if (listen) await app.listen(0, '127.0.0.1');
      else await app.init();
      return app;
    },
    async close(app) {
      open.delete(app);
      await app.close();
    },
  };
}

/** The error `promise` rejects with (fails the test if it resolves). */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(Error);
    return err as Error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/** Polls `check` until it returns true; fails after `timeout` ms. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  { timeout = 5_000, interval = 20, what = 'the condition' } = {},
): Promise<void> {
  const deadline = performance.now() + timeout;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`${what} did not hold within ${timeout} ms`);
    await delay(interval);
  }
}

/** A promise opened from outside: `open()` resolves it. */
export interface Gate {
  readonly promise: Promise<void>;
  open(): void;
}

export function gate(): Gate {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

export interface LogEntry {
  readonly level: 'log' | 'error' | 'warn' | 'debug' | 'verbose' | 'fatal';
  readonly message: string;
  readonly context: string | undefined;
}

/** A Nest logger that records every entry (and prints nothing). */
export class CapturingLogger implements LoggerService {
  readonly entries: LogEntry[] = [];

  log(message: unknown, ...rest: unknown[]): void {
    this.record('log', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.record('error', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.record('warn', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.record('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.record('verbose', message, rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    this.record('fatal', message, rest);
  }

  /** Entries logged in `context` (e.g. 'SherlockModule'). */
  from(context: string): LogEntry[] {
    return this.entries.filter((entry) => entry.context === context);
  }

  private record(level: LogEntry['level'], message: unknown, rest: unknown[]): void {
    const context = rest.at(-1);
    this.entries.push({
      level,
      message: String(message),
      context: typeof context === 'string' ? context : undefined,
    });
  }
}
