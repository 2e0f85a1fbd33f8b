/**
 * Lock errors in a TCP microservice (a real server and a ClientProxy in the test), against a real
 * Redis: the client's call fails with `{ status: 'error', code, message, lock, retryAfter }`, the
 * payload of the RpcException the mapping throws.
 */
import { Controller, type INestMicroservice } from '@nestjs/common';
import {
  type ClientProxy,
  ClientProxyFactory,
  MessagePattern,
  Payload,
  Transport,
} from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { firstValueFrom } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';

import { getFreePort } from '../../support/servers.js';
import {
  BUSY_RETRY_AFTER,
  holdJob,
  jobId,
  Jobs,
  sherlockModules,
  silent,
  UNAVAILABLE_RETRY_AFTER,
} from './fixtures.js';

@Controller()
class JobsHandlers {
  constructor(private readonly jobs: Jobs) {}

  @MessagePattern('run')
  run(@Payload() id: string) {
    return this.jobs.run(id);
  }

  @MessagePattern('wait')
  waitFor(@Payload() id: string) {
    return this.jobs.waitFor(id);
  }

  @MessagePattern('down-wait')
  downWait(@Payload() id: string) {
    return this.jobs.waitOnDown(id);
  }
}

let server: INestMicroservice | undefined;
let client: ClientProxy | undefined;
afterEach(async () => {
  await client?.close();
  await server?.close();
  client = undefined;
  server = undefined;
});

async function start(): Promise<{ server: INestMicroservice; client: ClientProxy }> {
  const port = await getFreePort();
  const moduleRef = await Test.createTestingModule({
    imports: await sherlockModules(),
    controllers: [JobsHandlers],
    providers: [Jobs],
  }).compile();
  server = moduleRef.createNestMicroservice({
    transport: Transport.TCP,
    options: { host: '127.0.0.1', port },
    logger: silent,
  });
  await server.listen();
  client = ClientProxyFactory.create({
    transport: Transport.TCP,
    options: { host: '127.0.0.1', port },
  });
  await client.connect();
  return { server, client };
}

/** What the call fails with (fails the test if it succeeds). */
async function failure(call: Promise<unknown>): Promise<Record<string, unknown>> {
  const outcome: unknown = await call.then(
    (value) => expect.unreachable(`expected an error, got ${JSON.stringify(value)}`),
    (err: unknown) => err,
  );
  return outcome as Record<string, unknown>;
}

describe('TCP microservice', () => {
  it('a busy lock: { code: LOCK_BUSY, retryAfter } to the client', async () => {
    const started = await start();
    const id = jobId();
    const holder = await holdJob(started.server, id);
    const error = await failure(firstValueFrom(started.client.send<string>('run', id)));
    expect(error).toEqual({
      status: 'error',
      code: 'LOCK_BUSY',
      lock: `job:${id}`,
      message: `Lock 'job:${id}' is held by another request; try again later`,
      retryAfter: BUSY_RETRY_AFTER,
    });
    await holder.release();
    expect(await firstValueFrom(started.client.send<string>('run', id))).toBe(`ran ${id}`);
  });

  it('a timeout: LOCK_TIMEOUT', async () => {
    const started = await start();
    const id = jobId();
    await holdJob(started.server, id);
    const error = await failure(firstValueFrom(started.client.send<string>('wait', id)));
    expect(error).toMatchObject({ status: 'error', code: 'LOCK_TIMEOUT', lock: `job:${id}` });
  });

  it('a lock server that is down: LOCK_BACKEND_UNAVAILABLE with retryAfter', async () => {
    const started = await start();
    const id = jobId();
    const error = await failure(firstValueFrom(started.client.send<string>('down-wait', id)));
    expect(error).toMatchObject({
      status: 'error',
      code: 'LOCK_BACKEND_UNAVAILABLE',
      lock: `job:${id}`,
      retryAfter: UNAVAILABLE_RETRY_AFTER,
    });
  });
});
