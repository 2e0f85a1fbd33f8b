/**
 * @Locked HTTP handlers through the LockInterceptor, over real HTTP (Express) and a real Redis:
 * 409 Conflict with Retry-After when busy, waiting handlers, lock names from piped arguments,
 * one lock per request, and no lock taken for a client that has gone away.
 */
import {
  Controller,
  Get,
  type INestApplication,
  Injectable,
  Param,
  ParseIntPipe,
  Query,
} from '@nestjs/common';
import {
  BaseLock,
  currentLock,
  LockAbortedError,
  Locked,
  LockService,
  SherlockModule,
} from 'nestjs-sherlock';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest';

import { redisUrl } from '../support/env.js';
import {
  CapturingLogger,
  delay,
  gate,
  type Gate,
  uniqueName,
  useApps,
  useProbe,
  waitFor,
} from './helpers.js';

const apps = useApps();
const probe = useProbe('redis');
const NAMESPACE = uniqueName('http');
/** Not a whole number of seconds: Retry-After rounds it up. */
const EXPIRE = 20_500;

/** What the handlers did, and the gates that keep them holding their lock. */
@Injectable()
class Journal {
  readonly events: string[] = [];
  /** `typeof id` as the lock name functions saw it. */
  readonly nameArgumentTypes: string[] = [];
  private readonly gates = new Map<string, Gate>();

  /** Makes the handler of request `tag` hold its lock until `open(tag)`. */
  hold(tag: string): void {
    this.gates.set(tag, gate());
  }

  open(tag: string): void {
    this.gates.get(tag)?.open();
  }

  /** Lets every held handler finish (so that a failed test does not keep its request open). */
  openAll(): void {
    for (const held of this.gates.values()) held.open();
  }

  async handle(id: number, tag: string): Promise<{ id: number; tag: string; lock?: string }> {
    this.events.push(`${tag}:start`);
    await this.gates.get(tag)?.promise;
    this.events.push(`${tag}:end`);
    return { id, tag, lock: currentLock()?.name };
  }
}

let journal: Journal | undefined;

/** The lock name of an order, from the id as the handler receives it (after ParseIntPipe). */
function orderLock(id: number): string {
  journal?.nameArgumentTypes.push(typeof id);
  if (typeof id !== 'number') throw new TypeError(`expected a number, got ${typeof id}`);
  return `order:${id}`;
}

@Controller('orders')
class OrdersController {
  constructor(private readonly journal: Journal) {}

  @Get(':id')
  @Locked(orderLock, { wait: false })
  async show(@Param('id', ParseIntPipe) id: number, @Query('tag') tag: string) {
    return this.journal.handle(id, tag);
  }

  @Get(':id/wait')
  @Locked(orderLock, { wait: true, timeout: 10_000 })
  async showWhenFree(@Param('id', ParseIntPipe) id: number, @Query('tag') tag: string) {
    return this.journal.handle(id, tag);
  }
}

let app: INestApplication;
let locks: LockService;

beforeEach(async () => {
  app = await apps.start(
    {
      imports: [
        SherlockModule.forRoot({
          backend: 'redis',
          connection: redisUrl(),
          namespace: NAMESPACE,
          expire: EXPIRE,
          retryInterval: 20,
        }),
      ],
      controllers: [OrdersController],
      providers: [Journal],
    },
    // Quiet: Nest logs the cancelled wait of a disconnected client as an unhandled error.
    { listen: true, logger: new CapturingLogger() },
  );
  locks = app.get(LockService);
  journal = app.get(Journal);
});

// Registered after useApps(): runs before it closes the application.
afterEach(() => {
  journal?.openAll();
  journal = undefined;
  vi.restoreAllMocks();
});

const get = (path: string) => request(app.getHttpServer()).get(path);
/** Sends the request now (a supertest request only starts when awaited). */
const send = (path: string) => get(path).then((response) => response);
const events = () => journal?.events ?? [];
const started = (tag: string) => () => events().includes(`${tag}:start`);

/**
 * The lock names of every acquire the module made so far (spied, calling through): the module
 * calls `acquireOrBusy()`, the `acquire()` that reports a busy lock with its `retryAfter`.
 */
function spyOnAcquire(): { names: () => string[]; spy: MockInstance<BaseLock['acquireOrBusy']> } {
  const spy = vi.spyOn(BaseLock.prototype, 'acquireOrBusy');
  return {
    spy,
    names: () => spy.mock.contexts.map((lock) => (lock instanceof BaseLock ? lock.name : '?')),
  };
}

describe('a @Locked handler with wait: false', () => {
  it('answers 409 Conflict with Retry-After while the lock is held; other ids pass', async () => {
    journal?.hold('a');
    const first = send('/orders/1?tag=a');
    await waitFor(started('a'), { what: 'the first request holding order:1' });
    expect(await probe.isLocked('order:1', NAMESPACE)).toBe(true);

    const busy = await get('/orders/1?tag=b');
    expect(busy.status).toBe(409);
    expect(busy.body).toEqual({
      statusCode: 409,
      error: 'Conflict',
      code: 'LOCK_BUSY',
      lock: 'order:1',
      message: expect.stringContaining("'order:1'"),
      retryAfter: Math.ceil(EXPIRE / 1000),
    });
    expect(busy.headers['retry-after']).toBe(String(Math.ceil(EXPIRE / 1000)));

    const other = await get('/orders/2?tag=c');
    expect(other.status).toBe(200);
    expect(other.body).toEqual({ id: 2, tag: 'c', lock: 'order:2' });

    journal?.open('a');
    const done = await first;
    expect(done.status).toBe(200);
    expect(done.body).toEqual({ id: 1, tag: 'a', lock: 'order:1' });
    expect(events()).not.toContain('b:start');
    expect(await probe.isLocked('order:1', NAMESPACE)).toBe(false);
  });
});

describe('a @Locked handler with wait: true', () => {
  it('makes the second request wait for the first, then answers 200', async () => {
    journal?.hold('w1');
    const first = send('/orders/3/wait?tag=w1');
    await waitFor(started('w1'), { what: 'the first request holding order:3' });
    const second = send('/orders/3/wait?tag=w2');
    await delay(400);
    expect(events()).not.toContain('w2:start');

    journal?.open('w1');
    const [one, two] = await Promise.all([first, second]);
    expect(one.status).toBe(200);
    expect(two.status).toBe(200);
    expect(two.body).toEqual({ id: 3, tag: 'w2', lock: 'order:3' });
    expect(events()).toEqual(['w1:start', 'w1:end', 'w2:start', 'w2:end']);
  });
});

describe('the lock name function', () => {
  it('receives the arguments after pipes', async () => {
    const response = await get('/orders/7?tag=piped');
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ id: 7, tag: 'piped', lock: 'order:7' });
    expect(journal?.nameArgumentTypes).toEqual(['number']);
  });

  it('is not called when a pipe rejects the request (400, no lock)', async () => {
    const { names } = spyOnAcquire();
    const response = await get('/orders/seven?tag=bad');
    expect(response.status).toBe(400);
    expect(journal?.nameArgumentTypes).toEqual([]);
    expect(names()).toEqual([]);
    expect(events()).toEqual([]);
  });
});

describe('exactly one lock per request', () => {
  it('creates and acquires one lock per call', async () => {
    const create = vi.spyOn(LockService.prototype, 'create');
    const { names } = spyOnAcquire();
    for (const tag of ['x', 'y', 'z']) {
      expect((await get(`/orders/9?tag=${tag}`)).status).toBe(200);
    }
    expect((await get('/orders/9/wait?tag=w')).status).toBe(200);
    expect(create.mock.calls.map(([name]) => name)).toEqual([
      'order:9',
      'order:9',
      'order:9',
      'order:9',
    ]);
    expect(names()).toEqual(['order:9', 'order:9', 'order:9', 'order:9']);
  });
});

describe('a client that disconnects while its request waits for the lock', () => {
  it('cancels the wait: no lock is taken and the handler never runs', async () => {
    const held = await locks.acquire('order:5');
    const { spy, names } = spyOnAcquire();
    const { port } = app.getHttpServer().address() as AddressInfo;

    const client = httpRequest({ host: '127.0.0.1', port, path: '/orders/5/wait?tag=gone' });
    const clientError = new Promise<Error>((resolve) => client.once('error', resolve));
    client.end();
    await waitFor(() => names().includes('order:5'), { what: 'the request waiting for order:5' });
    await delay(200);
    client.destroy();
    expect((await clientError).message).toMatch(/socket hang up/);

    // The server notices the disconnect and gives up waiting...
    await waitFor(() => spy.mock.settledResults.some((result) => result.type === 'rejected'), {
      what: 'the waiting acquire being cancelled',
    });
    const [settled] = spy.mock.settledResults;
    expect(settled?.type).toBe('rejected');
    expect(settled?.value).toBeInstanceOf(LockAbortedError);

    // ...so once the lock is free, nobody takes it on behalf of the dead request.
    await held.release();
    await delay(1_000);
    expect(events()).toEqual([]);
    expect(await locks.isLocked('order:5')).toBe(false);
    expect(await probe.isLocked('order:5', NAMESPACE)).toBe(false);
  });
});
