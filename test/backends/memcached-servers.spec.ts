/**
 * Memcached with several servers: memjs hashes each key to one server, so each lock lives on
 * exactly one of them (its fencing counter too). What happens when that server goes away, and
 * why a memjs client with `failover: true` is refused.
 */
import memjs from 'memjs';
import {
  configure,
  LockBackendError,
  MemcachedLock,
  resetConfiguration,
  SherlockModule,
} from 'nestjs-sherlock';
import { Test } from '@nestjs/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { type MemcachedServer, startMemcached } from '../support/servers.js';

const quiet = { log: () => undefined };

interface Routed {
  server(key: string): { port: string | number } | null;
}

describe('memcached: two servers, each lock on one of them', () => {
  let a: MemcachedServer;
  let b: MemcachedServer;
  const clients: memjs.Client[] = [];
  const connect = (options: Record<string, unknown> = {}) => {
    const client = memjs.Client.create(`${a.servers},${b.servers}`, {
      logger: quiet,
      retries: 1,
      timeout: 0.5,
      ...options,
    });
    clients.push(client);
    return client;
  };
  /** A lock name whose key (and so its fencing counter) lives on `server`. */
  const nameOn = (client: memjs.Client, server: MemcachedServer): string => {
    for (;;) {
      const name = uniqueName('mc');
      if (Number((client as unknown as Routed).server(name)?.port) === server.port) return name;
    }
  };

  beforeAll(async () => {
    [a, b] = await Promise.all([startMemcached(), startMemcached()]);
  });
  afterEach(() => resetConfiguration());
  afterAll(async () => {
    for (const client of clients) client.close();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  it('server A killed: its locks fail with LockBackendError (never a grant), B locks work; back empty, A forgets its holders', async () => {
    const client = connect();
    const onA = nameOn(client, a);
    const onB = nameOn(client, b);
    const heldOnA = new MemcachedLock(onA, { client, operationTimeout: 2_000 });
    const heldOnB = new MemcachedLock(onB, { client, operationTimeout: 2_000 });
    expect(await heldOnA.acquire(false)).toBe(true);
    expect(await heldOnB.acquire(false)).toBe(true);
    const tokenOnA = BigInt(heldOnA.fencingToken ?? -1);

    await a.kill('SIGKILL');
    const rival = new MemcachedLock(onA, { client, operationTimeout: 2_000 });
    await expect(rival.acquire(false)).rejects.toBeInstanceOf(LockBackendError);
    await expect(rival.locked()).rejects.toBeInstanceOf(LockBackendError);
    expect(rival.isAcquired).toBe(false);
    // B's lock is untouched: still held, and it releases normally.
    expect(await new MemcachedLock(onB, { client }).locked()).toBe(true);
    await heldOnB.release();
    const other = new MemcachedLock(nameOn(client, b), { client });
    expect(await other.acquire(false)).toBe(true);
    await other.release();

    // Memcached keeps nothing across a restart: A's lock is gone although its holder was never
    // told (its loss signal fires when its expiry would have passed unrenewed).
    await a.start();
    const fresh = connect();
    const taker = new MemcachedLock(onA, { client: fresh });
    expect(await taker.acquire(false)).toBe(true);
    expect(heldOnA.isAcquired, 'the old holder still believes it holds').toBe(true);
    // The counter was lost too: it restarts from the clock, still above the old token.
    expect(BigInt(taker.fencingToken ?? -1)).toBeGreaterThan(tokenOnA);
    await taker.release();
  });

  it('a memjs client with failover: true is refused (a lock whose server does not answer would be granted again on the other)', async () => {
    const client = connect({ failover: true });
    expect(() => new MemcachedLock('x', { client })).toThrow(TypeError);
    expect(() => new MemcachedLock('x', { client })).toThrow(/'failover': got true/);
    expect(() => configure({ client })).toThrow(/'failover'/);
    expect(() => configure({ backend: 'memcached', client })).toThrow(/'failover'/);
    await expect(
      Test.createTestingModule({
        imports: [
          SherlockModule.forRoot({
            backend: 'memcached',
            connection: { servers: [a.servers, b.servers], failover: true },
          }),
        ],
      }).compile(),
    ).rejects.toThrow(/'failover'/);
    // failover: false (memjs's default) is fine.
    expect(new MemcachedLock('x', { client: connect({ failover: false }) }).name).toBe('x');
  });
});
