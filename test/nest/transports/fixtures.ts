/**
 * What the transport suites share: two SherlockModule registrations (the default one on the
 * test Redis, `down` on a port where nothing listens: a lock server that is down), and a service
 * whose methods take locks the ways an application does (LockService.run inside a service,
 * @Locked on a service method), whichever transport calls them.
 */
import {
  type DynamicModule,
  type INestApplicationContext,
  Injectable,
  type LoggerService,
} from '@nestjs/common';
import {
  type BaseLock,
  InjectLockService,
  Locked,
  LockService,
  SherlockModule,
} from 'nestjs-sherlock';
import { Redis } from 'ioredis';
import { afterEach, expect } from 'vitest';

import { uniqueName } from '../../support/backends.js';
import { redisUrl } from '../../support/env.js';
import { getFreePort } from '../../support/servers.js';

/** Not a whole number of seconds: Retry-After rounds it up. */
export const EXPIRE = 20_500;
/** The Retry-After (s) of a busy lock just taken with EXPIRE: the holder's time left, rounded up. */
export const BUSY_RETRY_AFTER = Math.ceil(EXPIRE / 1000);
/** The default `unavailableRetryAfter` (5 s). */
export const UNAVAILABLE_RETRY_AFTER = 5;
/** A blocking acquire's timeout on the busy lock (ms): short, the lock stays held. */
export const WAIT_TIMEOUT = 300;

export const NAMESPACE = uniqueName('transports');

@Injectable()
export class Jobs {
  constructor(
    private readonly locks: LockService,
    @InjectLockService('down') private readonly downLocks: LockService,
  ) {}

  /** The lock is taken inside a service, with LockService.run, without waiting. */
  async run(id: string): Promise<string> {
    return this.locks.run(`job:${id}`, () => `ran ${id}`, { wait: false });
  }

  /** @Locked on a service method, waiting WAIT_TIMEOUT ms. */
  @Locked((id: string) => `job:${id}`, { timeout: WAIT_TIMEOUT })
  async waitFor(id: string): Promise<string> {
    return `waited ${id}`;
  }

  /** The lock server is down: one attempt. */
  async runOnDown(id: string): Promise<string> {
    return this.downLocks.run(`job:${id}`, () => `ran ${id}`, { wait: false });
  }

  /** The lock server is down: a blocking acquire that never gets an answer. */
  @Locked((id: string) => `job:${id}`, { name: 'down', timeout: 500 })
  async waitOnDown(id: string): Promise<string> {
    return `waited ${id}`;
  }
}

const deadClients: Redis[] = [];

/** An ioredis client of a port nothing listens on (its reconnection errors heard, not printed). */
function deadClient(port: number): Redis {
  const redis = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  deadClients.push(redis);
  return redis;
}

/** Closes the clients of the `down` registrations (a client you give is left open by the module). */
afterEach(() => {
  for (const redis of deadClients.splice(0)) redis.disconnect();
});

/** The two registrations (global), the `down` one on a free port nothing listens on. */
export async function sherlockModules(
  errorMapping: { errorMapping?: unknown } = {},
): Promise<DynamicModule[]> {
  const deadPort = await getFreePort();
  return [
    SherlockModule.forRoot({
      backend: 'redis',
      connection: redisUrl(),
      namespace: NAMESPACE,
      expire: EXPIRE,
      retryInterval: 50,
      isGlobal: true,
      ...(errorMapping as object),
    }),
    SherlockModule.forRoot({
      name: 'down',
      backend: 'redis',
      client: deadClient(deadPort),
      namespace: NAMESPACE,
      operationTimeout: 500,
      retryInterval: 50,
      isGlobal: true,
    }),
  ];
}

/** Takes `job:${id}` from outside the handlers (another holder), for EXPIRE ms. */
export async function holdJob(app: INestApplicationContext, id: string): Promise<BaseLock> {
  const lock = app.get(LockService).create(`job:${id}`);
  expect(await lock.acquire(false)).toBe(true);
  return lock;
}

/** A logger that prints nothing (the suites assert answers, not logs). */
export const silent: LoggerService = {
  log: () => undefined,
  error: () => undefined,
  warn: () => undefined,
};

/** `job:N` ids unique to one test. */
let next = 0;
export const jobId = (): string => `${process.pid}-${++next}-${Date.now()}`;
