/**
 * Lock errors in a GraphQL resolver (code-first, Mercurius on Fastify), against a real Redis: the
 * error of the answer carries `extensions.code` (`LOCK_BUSY`, `LOCK_TIMEOUT`,
 * `LOCK_BACKEND_UNAVAILABLE`), `extensions.lock` and `extensions.retryAfter` (seconds).
 */
import { GraphQLModule } from '@nestjs/graphql';
import { Args, Query, Resolver } from '@nestjs/graphql';
import { MercuriusDriver, type MercuriusDriverConfig } from '@nestjs/mercurius';
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

@Resolver()
class JobsResolver {
  constructor(private readonly jobs: Jobs) {}

  @Query(() => String)
  run(@Args('id') id: string) {
    return this.jobs.run(id);
  }

  @Query(() => String)
  waitFor(@Args('id') id: string) {
    return this.jobs.waitFor(id);
  }

  @Query(() => String)
  down(@Args('id') id: string) {
    return this.jobs.runOnDown(id);
  }
}

let app: NestFastifyApplication | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

async function start(): Promise<NestFastifyApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      ...(await sherlockModules()),
      GraphQLModule.forRoot<MercuriusDriverConfig>({
        driver: MercuriusDriver,
        autoSchemaFile: true,
      }),
    ],
    providers: [Jobs, JobsResolver],
  }).compile();
  app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), {
    logger: silent,
  });
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  return app;
}

interface GraphQLAnswer {
  data: Record<string, unknown> | null;
  errors?: { message: string; path?: string[]; extensions?: Record<string, unknown> }[];
}

async function query(field: string, id: string): Promise<GraphQLAnswer> {
  if (!app) throw new Error('no application');
  const response = await app.inject({
    method: 'POST',
    url: '/graphql',
    payload: { query: `query($id: String!) { ${field}(id: $id) }`, variables: { id } },
  });
  return response.json<GraphQLAnswer>();
}

describe('GraphQL (Mercurius)', () => {
  it('a busy lock: an error with extensions.code LOCK_BUSY and retryAfter', async () => {
    const started = await start();
    const id = jobId();
    const holder = await holdJob(started, id);
    const answer = await query('run', id);
    expect(answer.data).toBeNull();
    expect(answer.errors).toEqual([
      expect.objectContaining({
        message: `Lock 'job:${id}' is held by another request; try again later`,
        path: ['run'],
        extensions: { code: 'LOCK_BUSY', lock: `job:${id}`, retryAfter: BUSY_RETRY_AFTER },
      }),
    ]);
    await holder.release();
    expect(await query('run', id)).toEqual({ data: { run: `ran ${id}` } });
  });

  it('a timeout: LOCK_TIMEOUT', async () => {
    const started = await start();
    const id = jobId();
    await holdJob(started, id);
    const answer = await query('waitFor', id);
    expect(answer.errors?.[0]?.extensions).toMatchObject({
      code: 'LOCK_TIMEOUT',
      lock: `job:${id}`,
    });
    expect(answer.errors?.[0]?.extensions?.retryAfter).toBeGreaterThanOrEqual(1);
  });

  it('a lock server that is down: LOCK_BACKEND_UNAVAILABLE with retryAfter', async () => {
    await start();
    const id = jobId();
    const answer = await query('down', id);
    expect(answer.errors?.[0]?.extensions).toEqual({
      code: 'LOCK_BACKEND_UNAVAILABLE',
      lock: `job:${id}`,
      retryAfter: UNAVAILABLE_RETRY_AFTER,
    });
  });
});
