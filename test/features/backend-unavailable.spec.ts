/**
 * A lock server that stops answering is not a busy lock: against a real Redis that is killed
 * while a blocking acquire waits for a busy lock, the wait ends with LockBackendError (the
 * driver's error as cause), never LockTimeoutError, and no lock is reported held; once the
 * server is back, locks work again.
 */
import { Redis } from 'ioredis';
import { LockBackendError, LockTimeoutError, RedisLock } from 'nestjs-sherlock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { delay, rejectionOf, waitFor } from '../support/helpers.js';
import { type RedisServer, startRedis } from '../support/servers.js';

const OPERATION_TIMEOUT_MS = 1_000;
const TIMEOUT_MS = 4_000;
/** Wide: the machine is shared. */
const MARGIN_MS = 5_000;

let server: RedisServer;
const clients: Redis[] = [];

function client(): Redis {
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined); // reconnection errors while the server is down
  clients.push(redis);
  return redis;
}

beforeAll(async () => {
  server = await startRedis();
});

afterAll(async () => {
  for (const redis of clients) redis.disconnect();
  await server.stop();
});

describe('Redis killed while a blocking acquire waits for a busy lock', () => {
  it('ends with LockBackendError (not LockTimeoutError) and holds nothing; works again after a restart', async () => {
    const name = uniqueName('down');
    const options = { operationTimeout: OPERATION_TIMEOUT_MS, retryInterval: 100 };
    const holder = new RedisLock(name, { client: client(), expire: 60_000, ...options });
    expect(await holder.acquire(false)).toBe(true);

    const waiterClient = client();
    const waiter = new RedisLock(name, { client: waiterClient, timeout: TIMEOUT_MS, ...options });
    const started = performance.now();
    const waiting = rejectionOf(waiter.acquire());
    // It gets "busy" answers first (every 100 ms): the server is up, the lock taken.
    await waitFor(() => waiterClient.status === 'ready');
    await delay(500);
    expect(await waiterClient.exists(holder.key)).toBe(1);
    await server.kill('SIGKILL');

    const error = await waiting;
    const ms = performance.now() - started;
    expect(error).toBeInstanceOf(LockBackendError);
    expect(error).not.toBeInstanceOf(LockTimeoutError);
    expect((error as LockBackendError).operation).toBe('acquire');
    expect(error.cause).toBeDefined();
    expect(waiter.isAcquired).toBe(false);
    expect(ms).toBeGreaterThanOrEqual(TIMEOUT_MS);
    expect(ms).toBeLessThan(TIMEOUT_MS + OPERATION_TIMEOUT_MS + MARGIN_MS);

    // While it is down, a non-blocking acquire says so too.
    const tryOnce = await rejectionOf(waiter.acquire(false));
    expect(tryOnce).toBeInstanceOf(LockBackendError);
    expect(waiter.isAcquired).toBe(false);

    // Back (empty: no persistence), the lock can be taken again: at once, or once the attempts
    // queued by the driver while it was down have run and been undone.
    await server.start();
    await waitFor(async () => (await waiterClient.ping().catch(() => '')) === 'PONG');
    await waitFor(() => waiter.acquire(false), { what: 'the lock to be free again' });
    expect(waiter.isAcquired).toBe(true);
    await waiter.release();
  });
});
