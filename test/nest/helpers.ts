/**
 * The Nest-only helpers of the module tests (test/nest/*.spec.ts): applications that are always
 * closed, probes that look at the real servers through clients of their own ("another process"),
 * and a logger that records what the module logs. The backends, their clients and lock classes
 * come from the one table (test/support/backends.ts); polling, gates and rejections from
 * test/support/helpers.ts.
 */
import type { INestApplication, LoggerService, ModuleMetadata } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ClientClosedError, type Etcd3 } from 'etcd3';
import type { Redis } from 'ioredis';
import type memjs from 'memjs';
import {
  backends,
  type BaseLock,
  type BaseLockOptions,
  type ConnectionSettings,
} from 'nestjs-sherlock';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';

import { fixture, type LockConstructor, uniqueName } from '../support/backends.js';

export { uniqueName };
export { delay, gate, type Gate, rejectionOf, waitFor } from '../support/helpers.js';

/** The backends the Nest tests register (the built-in ones, by name). */
export type ServerBackend = 'redis' | 'memcached' | 'etcd';
export type NestBackend = ServerBackend | 'memory';

export const SERVER_BACKENDS: readonly ServerBackend[] = ['redis', 'memcached', 'etcd'];
export const ALL_BACKENDS: readonly NestBackend[] = ['memory', ...SERVER_BACKENDS];

/** `forRoot()` options for `backend` on the test servers (memory: the process-wide store). */
export function backendOptions<B extends NestBackend | 'threads' | 'cluster'>(
  backend: B,
): {
  backend: B;
  connection?: ConnectionSettings;
} {
  const { connection } = fixture(backend);
  return connection ? { backend, connection: connection() } : { backend };
}

/** Whether a client is usable ('open'), closed for good ('closed'), or in between. */
export type ClientState = 'open' | 'closed' | 'other';

/** How to tell whether a client of each server backend's library is open or closed. */
const clientStates: Record<ServerBackend, (client: object) => Promise<ClientState>> = {
  redis: async (client) => {
    const { status } = client as Redis;
    return status === 'ready' ? 'open' : status === 'end' ? 'closed' : 'other';
  },
  // memjs reconnects on the next command after close(): look at its sockets instead.
  memcached: async (client) => {
    const connected = (client as memjs.Client).servers.map((server) => server.connected);
    if (connected.every(Boolean)) return 'open';
    return connected.some(Boolean) ? 'other' : 'closed';
  },
  etcd: async (client) =>
    (client as Etcd3)
      .get('nestjs-sherlock-probe')
      .string()
      .then(
        (): ClientState => 'open',
        (err: unknown): ClientState => (err instanceof ClientClosedError ? 'closed' : 'other'),
      ),
};

/** How to make, close and inspect a client of a server backend's library (from the table). */
export const clients = Object.fromEntries(
  SERVER_BACKENDS.map((backend) => {
    const { createClient, closeClient } = fixture(backend);
    return [backend, { create: createClient, close: closeClient, state: clientStates[backend] }];
  }),
) as Record<
  ServerBackend,
  {
    create(): object;
    close(client: object): Promise<void>;
    state(client: object): Promise<ClientState>;
  }
>;

/** The lock class of each backend (from the table). */
export const lockClasses = Object.fromEntries(
  ALL_BACKENDS.map((backend) => [backend, fixture(backend).LockClass]),
) as Record<NestBackend, LockConstructor>;

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
