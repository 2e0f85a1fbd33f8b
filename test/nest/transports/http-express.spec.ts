/**
 * Lock errors over HTTP on Express, against a real Redis: wherever the lock is taken (a service's
 * LockService.run, a @Locked service method), a busy lock is 409 with `code` and `Retry-After`
 * (the holder's time left), a lock server that is down 503 `LOCK_BACKEND_UNAVAILABLE` with
 * `Retry-After`, a lost lock 500 `LOCK_LOST`; the application's own exceptions and other errors
 * are untouched; `errorMapping` overrides or turns it off, and is validated at bootstrap.
 */
import {
  BadRequestException,
  Controller,
  Get,
  HttpException,
  type INestApplication,
  Param,
} from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  currentLock,
  LockBusyError,
  LockService,
  type LockErrorContext,
  LockError,
  SherlockModule,
} from 'nestjs-sherlock';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';

import {
  BUSY_RETRY_AFTER,
  holdJob,
  jobId,
  Jobs,
  sherlockModules,
  silent,
  UNAVAILABLE_RETRY_AFTER,
} from './fixtures.js';

@Controller('jobs')
class JobsController {
  constructor(
    private readonly jobs: Jobs,
    private readonly locks: LockService,
  ) {}

  @Get(':id/run')
  run(@Param('id') id: string) {
    return this.jobs.run(id);
  }

  @Get(':id/wait')
  waitFor(@Param('id') id: string) {
    return this.jobs.waitFor(id);
  }

  @Get(':id/down')
  down(@Param('id') id: string) {
    return this.jobs.runOnDown(id);
  }

  @Get(':id/down-wait')
  downWait(@Param('id') id: string) {
    return this.jobs.waitOnDown(id);
  }

  /** The lock is taken away while the handler runs: its renewal finds it gone. */
  @Get(':id/lost')
  lost(@Param('id') id: string) {
    return this.locks.run(`job:${id}`, async (lock) => {
      await (this.locks.client as { del(key: string): Promise<number> }).del(lock.key);
      await lock.extend();
      return 'not reached';
    });
  }

  /** The application's own exception, thrown while holding a lock. */
  @Get(':id/own')
  own(@Param('id') id: string) {
    return this.locks.run(`job:${id}`, () => {
      throw new BadRequestException('your request is wrong');
    });
  }

  /** Not a lock error: Nest's own answer (500). */
  @Get(':id/plain')
  plain(@Param('id') id: string) {
    return this.locks.run(`job:${id}`, () => {
      throw new Error('boom');
    });
  }

  @Get(':id/held')
  held(@Param('id') id: string) {
    return this.locks.run(`job:${id}`, () => ({ lock: currentLock()?.name }));
  }
}

const open: INestApplication[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((app) => app.close()));
});

async function start(options: { errorMapping?: unknown } = {}): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: await sherlockModules(options),
    controllers: [JobsController],
    providers: [Jobs],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: silent });
  open.push(app);
  await app.init();
  return app;
}

describe('HTTP on Express: the default mapping', () => {
  it('a busy lock taken in a service (LockService.run, wait: false): 409 LOCK_BUSY, Retry-After = the time left', async () => {
    const app = await start();
    const id = jobId();
    const holder = await holdJob(app, id);
    const response = await request(app.getHttpServer()).get(`/jobs/${id}/run`);
    expect(response.status).toBe(409);
    expect(response.body).toEqual({
      statusCode: 409,
      error: 'Conflict',
      code: 'LOCK_BUSY',
      lock: `job:${id}`,
      message: `Lock 'job:${id}' is held by another request; try again later`,
      retryAfter: BUSY_RETRY_AFTER,
    });
    expect(response.headers['retry-after']).toBe(String(BUSY_RETRY_AFTER));
    await holder.release();
    const free = await request(app.getHttpServer()).get(`/jobs/${id}/run`);
    expect(free.status).toBe(200);
    expect(free.text).toBe(`ran ${id}`);
  });

  it('a @Locked service method that waited in vain: 409 LOCK_TIMEOUT with Retry-After', async () => {
    const app = await start();
    const id = jobId();
    await holdJob(app, id);
    const response = await request(app.getHttpServer()).get(`/jobs/${id}/wait`);
    expect(response.status).toBe(409);
    expect(response.body).toMatchObject({ code: 'LOCK_TIMEOUT', lock: `job:${id}` });
    const retryAfter = Number(response.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(BUSY_RETRY_AFTER);
    expect(response.body.retryAfter).toBe(retryAfter);
  });

  it('a lock server that is down, without waiting: 503 LOCK_BACKEND_UNAVAILABLE with Retry-After', async () => {
    const app = await start();
    const response = await request(app.getHttpServer()).get(`/jobs/${jobId()}/down`);
    expect(response.status).toBe(503);
    expect(response.body).toMatchObject({
      statusCode: 503,
      error: 'Service Unavailable',
      code: 'LOCK_BACKEND_UNAVAILABLE',
      retryAfter: UNAVAILABLE_RETRY_AFTER,
    });
    // The client learns nothing of the server's address.
    expect(JSON.stringify(response.body)).not.toContain('127.0.0.1');
    expect(response.headers['retry-after']).toBe(String(UNAVAILABLE_RETRY_AFTER));
  });

  it('a lock server that is down, with a blocking @Locked: 503 too (not a 409 timeout)', async () => {
    const app = await start();
    const response = await request(app.getHttpServer()).get(`/jobs/${jobId()}/down-wait`);
    expect(response.status).toBe(503);
    expect(response.body).toMatchObject({ code: 'LOCK_BACKEND_UNAVAILABLE' });
    expect(response.headers['retry-after']).toBe(String(UNAVAILABLE_RETRY_AFTER));
  });

  it('a lock lost while the handler ran: 500 LOCK_LOST, no Retry-After', async () => {
    const app = await start();
    const id = jobId();
    const response = await request(app.getHttpServer()).get(`/jobs/${id}/lost`);
    expect(response.status).toBe(500);
    expect(response.body).toMatchObject({
      statusCode: 500,
      code: 'LOCK_LOST',
      lock: `job:${id}`,
    });
    expect(response.headers['retry-after']).toBeUndefined();
  });

  it("the application's own exceptions and other errors are untouched", async () => {
    const app = await start();
    const own = await request(app.getHttpServer()).get(`/jobs/${jobId()}/own`);
    expect(own.status).toBe(400);
    expect(own.body).toEqual({
      statusCode: 400,
      error: 'Bad Request',
      message: 'your request is wrong',
    });
    const plain = await request(app.getHttpServer()).get(`/jobs/${jobId()}/plain`);
    expect(plain.status).toBe(500);
    expect(plain.body).toEqual({ statusCode: 500, message: 'Internal server error' });
    expect(plain.headers['retry-after']).toBeUndefined();
    const ok = await request(app.getHttpServer()).get(`/jobs/${jobId()}/held`);
    expect(ok.status).toBe(200);
  });
});

describe('HTTP on Express: errorMapping', () => {
  it('false: lock errors reach Nest as they are (500)', async () => {
    const app = await start({ errorMapping: false });
    const id = jobId();
    await holdJob(app, id);
    const response = await request(app.getHttpServer()).get(`/jobs/${id}/run`);
    expect(response.status).toBe(500);
    expect(response.headers['retry-after']).toBeUndefined();
  });

  it('a function: what it returns is thrown; undefined keeps the default', async () => {
    const seen: string[] = [];
    const map = (error: LockError, context: LockErrorContext) => {
      seen.push(`${context.transport} ${error.name} ${context.description?.code}`);
      if (error instanceof LockBusyError) {
        return new HttpException({ busy: error.lockName, code: context.description?.code }, 423);
      }
      return undefined;
    };
    const app = await start({ errorMapping: map });
    const id = jobId();
    await holdJob(app, id);
    const busy = await request(app.getHttpServer()).get(`/jobs/${id}/run`);
    expect(busy.status).toBe(423);
    expect(busy.body).toEqual({ busy: `job:${id}`, code: 'LOCK_BUSY' });
    const down = await request(app.getHttpServer()).get(`/jobs/${jobId()}/down`);
    expect(down.status).toBe(503);
    expect(seen).toEqual([
      'http LockBusyError LOCK_BUSY',
      'http LockBackendError LOCK_BACKEND_UNAVAILABLE',
    ]);
  });

  it('{ unavailableRetryAfter }: the Retry-After of a server that is down', async () => {
    const app = await start({ errorMapping: { unavailableRetryAfter: 30_000 } });
    const response = await request(app.getHttpServer()).get(`/jobs/${jobId()}/down`);
    expect(response.status).toBe(503);
    expect(response.headers['retry-after']).toBe('30');
  });

  it.each([
    [42, "Invalid option 'errorMapping': got 42"],
    [{ map: 'no' }, "Invalid option 'errorMapping.map'"],
    [{ unavailableRetryAfter: -1 }, "Invalid option 'errorMapping.unavailableRetryAfter'"],
    [{ retry: 1 }, "Unknown option 'retry' for SherlockModule option 'errorMapping'"],
  ])('a bad value (%j) fails the bootstrap, naming the option', async (value, message) => {
    await expect(start({ errorMapping: value })).rejects.toThrow(message);
  });

  it('set on two registrations: fails the bootstrap (it is app-wide)', async () => {
    const moduleRef = Test.createTestingModule({
      imports: [
        SherlockModule.forRoot({ backend: 'memory', errorMapping: false }),
        SherlockModule.forRoot({ name: 'third', backend: 'memory', errorMapping: () => undefined }),
      ],
    });
    await expect(moduleRef.compile()).rejects.toThrow(
      "SherlockModule option 'errorMapping' is set on the registrations 'default' and 'third'",
    );
  });
});
