/**
 * Lock errors in a WebSocket gateway (`@nestjs/platform-ws`, a `ws` client in the test), against
 * a real Redis: the client gets an `exception` event whose data is
 * `{ status: 'error', code, message, lock, retryAfter }` (the WsException the mapping throws).
 */
import { type INestApplication } from '@nestjs/common';
import { WsAdapter } from '@nestjs/platform-ws';
import { Test } from '@nestjs/testing';
import { MessageBody, SubscribeMessage, WebSocketGateway } from '@nestjs/websockets';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
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

/** The part of a `ws` client used here (the package has no types installed). */
interface WsClient {
  on(event: 'open', listener: () => void): void;
  on(event: 'message', listener: (data: Buffer) => void): void;
  on(event: 'error', listener: (err: Error) => void): void;
  send(data: string): void;
  close(): void;
}
const { WebSocket } = createRequire(import.meta.url)('ws') as {
  WebSocket: new (url: string) => WsClient;
};

@WebSocketGateway()
class JobsGateway {
  constructor(private readonly jobs: Jobs) {}

  @SubscribeMessage('run')
  async run(@MessageBody() id: string) {
    return { event: 'ran', data: await this.jobs.run(id) };
  }

  @SubscribeMessage('wait')
  async waitFor(@MessageBody() id: string) {
    return { event: 'ran', data: await this.jobs.waitFor(id) };
  }

  @SubscribeMessage('down')
  async down(@MessageBody() id: string) {
    return { event: 'ran', data: await this.jobs.runOnDown(id) };
  }
}

let app: INestApplication | undefined;
let socket: WsClient | undefined;
afterEach(async () => {
  socket?.close();
  socket = undefined;
  await app?.close();
  app = undefined;
});

async function start(): Promise<{ app: INestApplication; socket: WsClient }> {
  const moduleRef = await Test.createTestingModule({
    imports: await sherlockModules(),
    providers: [Jobs, JobsGateway],
  }).compile();
  app = moduleRef.createNestApplication({ logger: silent });
  app.useWebSocketAdapter(new WsAdapter(app));
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  socket = client;
  await new Promise<void>((resolve, reject) => {
    client.on('open', resolve);
    client.on('error', reject);
  });
  return { app, socket: client };
}

/** Sends `event` with `data` and resolves the next message the server sends. */
function ask(
  client: WsClient,
  event: string,
  data: string,
): Promise<{ event: string; data: unknown }> {
  return new Promise((resolve) => {
    client.on('message', (raw) =>
      resolve(JSON.parse(raw.toString()) as { event: string; data: unknown }),
    );
    client.send(JSON.stringify({ event, data }));
  });
}

describe('WebSocket gateway (ws)', () => {
  it('a busy lock: an exception event with code LOCK_BUSY and retryAfter', async () => {
    const started = await start();
    const id = jobId();
    const holder = await holdJob(started.app, id);
    expect(await ask(started.socket, 'run', id)).toEqual({
      event: 'exception',
      data: {
        status: 'error',
        code: 'LOCK_BUSY',
        lock: `job:${id}`,
        message: `Lock 'job:${id}' is held by another request; try again later`,
        retryAfter: BUSY_RETRY_AFTER,
      },
    });
    await holder.release();
  });

  it('a timeout: LOCK_TIMEOUT', async () => {
    const started = await start();
    const id = jobId();
    await holdJob(started.app, id);
    const answer = await ask(started.socket, 'wait', id);
    expect(answer).toMatchObject({ event: 'exception', data: { code: 'LOCK_TIMEOUT' } });
  });

  it('a lock server that is down: LOCK_BACKEND_UNAVAILABLE with retryAfter', async () => {
    const started = await start();
    const id = jobId();
    expect(await ask(started.socket, 'down', id)).toEqual({
      event: 'exception',
      data: {
        status: 'error',
        code: 'LOCK_BACKEND_UNAVAILABLE',
        lock: `job:${id}`,
        message: `The lock server could not be reached for lock 'job:${id}'; try again later`,
        retryAfter: UNAVAILABLE_RETRY_AFTER,
      },
    });
  });

  it('a free lock: the handler answers', async () => {
    const started = await start();
    const id = jobId();
    expect(await ask(started.socket, 'run', id)).toEqual({ event: 'ran', data: `ran ${id}` });
  });
});
