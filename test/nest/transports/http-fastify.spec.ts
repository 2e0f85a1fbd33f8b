/**
 * Lock errors over HTTP on Fastify, against a real Redis: a busy lock is 409 with `code` and
 * `Retry-After` (the holder's time left), a lock server that is down 503
 * `LOCK_BACKEND_UNAVAILABLE` with `Retry-After`, set on Fastify's reply.
 */
import { Controller, Get, Param } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
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
  constructor(private readonly jobs: Jobs) {}

  @Get(':id/run')
  run(@Param('id') id: string) {
    return this.jobs.run(id);
  }

  @Get(':id/wait')
  waitFor(@Param('id') id: string) {
    return this.jobs.waitFor(id);
  }

  @Get(':id/down-wait')
  downWait(@Param('id') id: string) {
    return this.jobs.waitOnDown(id);
  }
}

let app: NestFastifyApplication | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function start(): Promise<NestFastifyApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: await sherlockModules(),
    controllers: [JobsController],
    providers: [Jobs],
  }).compile();
  app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), {
    logger: silent,
  });
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  return app;
}

const get = async (path: string) => {
  if (!app) throw new Error('no application');
  const response = await app.inject({ method: 'GET', url: path });
  return {
    status: response.statusCode,
    retryAfter: response.headers['retry-after'],
    body: response.json<Record<string, unknown>>(),
  };
};

describe('HTTP on Fastify', () => {
  it('a busy lock: 409 LOCK_BUSY with Retry-After = the time left', async () => {
    const started = await start();
    const id = jobId();
    const holder = await holdJob(started, id);
    const busy = await get(`/jobs/${id}/run`);
    expect(busy.status).toBe(409);
    expect(busy.body).toEqual({
      statusCode: 409,
      error: 'Conflict',
      code: 'LOCK_BUSY',
      lock: `job:${id}`,
      message: `Lock 'job:${id}' is held by another request; try again later`,
      retryAfter: BUSY_RETRY_AFTER,
    });
    expect(busy.retryAfter).toBe(String(BUSY_RETRY_AFTER));
    await holder.release();
    const free = await started.inject({ method: 'GET', url: `/jobs/${id}/run` });
    expect(free.statusCode).toBe(200);
    expect(free.body).toBe(`ran ${id}`);
  });

  it('a timeout: 409 LOCK_TIMEOUT with Retry-After', async () => {
    const started = await start();
    const id = jobId();
    await holdJob(started, id);
    const response = await get(`/jobs/${id}/wait`);
    expect(response.status).toBe(409);
    expect(response.body).toMatchObject({ code: 'LOCK_TIMEOUT', lock: `job:${id}` });
    expect(Number(response.retryAfter)).toBeGreaterThanOrEqual(1);
    expect(Number(response.retryAfter)).toBeLessThanOrEqual(BUSY_RETRY_AFTER);
  });

  it('a lock server that is down (blocking acquire): 503 LOCK_BACKEND_UNAVAILABLE with Retry-After', async () => {
    await start();
    const response = await get(`/jobs/${jobId()}/down-wait`);
    expect(response.status).toBe(503);
    expect(response.body).toMatchObject({
      statusCode: 503,
      error: 'Service Unavailable',
      code: 'LOCK_BACKEND_UNAVAILABLE',
      retryAfter: UNAVAILABLE_RETRY_AFTER,
    });
    expect(response.retryAfter).toBe(String(UNAVAILABLE_RETRY_AFTER));
  });
});
