/**
 * Memcached: release (and extend) in ONE request, by the CAS value the `add` answered with
 * (lib/backends/memcached/held.ts). On a memcached of its own, so that its `stats` counters and
 * CAS values are this file's alone. The dangerous case is built for real: a restarted memcached
 * counts CAS values from 1 again, so the old holder's remembered CAS value is made to be the new
 * holder's, and the old holder's release must still not delete it.
 */
import memjs from 'memjs';
import { LockManager, LockNotHeldError, type BaseLock } from 'nestjs-sherlock';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { type MemcachedServer, startMemcached } from '../support/servers.js';

interface RawResponse {
  header: { status: number; cas: Buffer };
  val: Buffer;
}
interface Raw {
  seq: number;
  incrSeq(): void;
  perform(
    key: string,
    request: Buffer,
    seq: number,
    cb: (err: unknown, r: RawResponse) => void,
  ): void;
}

/** One binary request through memjs, answered with the item's CAS value (memjs has no CAS API). */
function raw(client: memjs.Client, opcode: number, key: string, extras: Buffer, value: string) {
  const c = client as unknown as Raw;
  c.incrSeq();
  const request = memjs.Utils.makeRequestBuffer(opcode, key, extras, value, c.seq);
  return new Promise<RawResponse>((resolve, reject) => {
    c.perform(key, request, c.seq, (err, response) => (err ? reject(err) : resolve(response)));
  });
}

/** The CAS value of `key`'s item (GET), or null when absent. */
async function casOf(client: memjs.Client, key: string): Promise<bigint | null> {
  const { header } = await raw(client, 0x00, key, Buffer.alloc(0), '');
  return header.status === 0 ? header.cas.readBigUInt64BE(0) : null;
}

/** The value of `key`'s item (the holder's owner token), or null when absent. */
async function ownerOf(client: memjs.Client, key: string): Promise<string | null> {
  const { header, val } = await raw(client, 0x00, key, Buffer.alloc(0), '');
  return header.status === 0 ? val.toString('utf8') : null;
}

/** A plain SET: resolves the CAS value the server gave the item. */
async function store(client: memjs.Client, key: string): Promise<bigint> {
  const { header } = await raw(client, 0x01, key, Buffer.alloc(8), 'x');
  expect(header.status).toBe(0);
  return header.cas.readBigUInt64BE(0);
}

async function stats(client: memjs.Client): Promise<Record<string, number>> {
  const found = await new Promise<Record<string, string>>((resolve, reject) => {
    client.stats((err, _server, s) => (err ? reject(err) : s && resolve(s)));
  });
  return Object.fromEntries(Object.entries(found).map(([k, v]) => [k, Number(v)]));
}

/** The CAS value this holding remembered from its add (or last extend). */
function rememberedCas(lock: BaseLock): bigint | undefined {
  const held = lock.holding?.held as { cas?: Buffer } | undefined;
  return held?.cas?.readBigUInt64BE(0);
}

describe('memcached: release by the add CAS value', () => {
  let server: MemcachedServer;
  const clients: memjs.Client[] = [];
  const connect = () => {
    const client = memjs.Client.create(server.servers, {
      logger: { log: () => undefined },
      retries: 1,
      timeout: 2,
    });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    server = await startMemcached();
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    await server?.stop();
  });

  it('one request per release and per extend (no GET), and the CAS kept is the item one', async () => {
    const client = connect();
    const locks = new LockManager({ backend: 'memcached', client, expire: 30_000 });
    const lock = locks.lock(uniqueName('cas'));
    expect(await lock.acquire(false)).toBe(true);
    expect(rememberedCas(lock)).toBe(await casOf(client, lock.key));

    const beforeExtend = await stats(client);
    await lock.extend(20_000);
    const afterExtend = await stats(client);
    expect(afterExtend['cmd_get'] ?? NaN).toBe(beforeExtend['cmd_get']);
    expect((afterExtend['cas_hits'] ?? NaN) - (beforeExtend['cas_hits'] ?? NaN)).toBe(1);
    // The extend answered with the item new CAS value, and it was kept.
    expect(rememberedCas(lock)).toBe(await casOf(client, lock.key));

    const beforeRelease = await stats(client);
    await lock.release();
    const afterRelease = await stats(client);
    expect(afterRelease['cmd_get'] ?? NaN).toBe(beforeRelease['cmd_get']);
    expect((afterRelease['delete_hits'] ?? NaN) - (beforeRelease['delete_hits'] ?? NaN)).toBe(1);
    expect(await lock.locked()).toBe(false);
    await locks.close();
  });

  it('after a restart, a new holder whose item has the SAME CAS value as the old holder remembered is not deleted by the old holder release', async () => {
    const client = connect();
    const locks = new LockManager({ backend: 'memcached', client, expire: 60_000 });
    const name = uniqueName('restart');
    // A CAS value above 1, so that the coincidence below is built, not the first store.
    for (let i = 0; i < 5; i++) await store(client, uniqueName('pad'));
    const a = locks.lock(name);
    expect(await a.acquire(false)).toBe(true);
    const casA = rememberedCas(a);
    expect(casA).toBe(await casOf(client, a.key));
    expect(casA).toBeGreaterThan(2n);

    await server.restart();
    // The new server counts from 1: store until the next store gets A's CAS value. The first
    // request reconnects the client (a new socket object).
    let last = await store(client, uniqueName('pad'));
    while (last < (casA ?? 0n) - 1n) last = await store(client, uniqueName('pad'));
    expect(last, 'the new server counter is just below A CAS value').toBe((casA ?? 0n) - 1n);

    const b = locks.lock(name);
    expect(await b.acquire(false)).toBe(true);
    expect(await casOf(client, b.key), "B's item has A's remembered CAS value").toBe(casA);
    expect(rememberedCas(a)).toBe(casA);

    // A still believes it holds; its release must find B's token and refuse.
    await expect(a.release()).rejects.toBeInstanceOf(LockNotHeldError);
    expect(await casOf(client, b.key), 'B untouched').toBe(casA);
    expect(await ownerOf(client, b.key)).toBe(b.holding?.token);
    await b.release();
    expect(await b.locked()).toBe(false);
    await locks.close();
  });

  it('release after the lock expired and another holder took it: refused, the other holder untouched', async () => {
    const client = connect();
    const locks = new LockManager({ backend: 'memcached', client });
    const name = uniqueName('expired');
    const a = locks.lock(name, { expire: 1_000 });
    expect(await a.acquire(false)).toBe(true);
    await delay(2_500); // memcached counts whole seconds: gone after at most 2 s
    const b = locks.lock(name, { expire: 30_000 });
    expect(await b.acquire(false)).toBe(true);
    await expect(a.release()).rejects.toBeInstanceOf(LockNotHeldError);
    expect(await ownerOf(client, b.key)).toBe(b.holding?.token);
    await b.release();
    await locks.close();
  });

  it('forceRelease still works, and the holder release afterwards is refused (with or without a new holder)', async () => {
    const client = connect();
    const locks = new LockManager({ backend: 'memcached', client, expire: 30_000 });
    const name = uniqueName('forced');
    const a = locks.lock(name);
    expect(await a.acquire(false)).toBe(true);
    expect((await locks.forceRelease(name))?.held).toBe(true);
    expect(await a.locked()).toBe(false);
    // Nobody holds it: the DELETE carrying A's CAS value finds nothing.
    await expect(a.release()).rejects.toBeInstanceOf(LockNotHeldError);

    expect(await a.acquire(false)).toBe(true);
    await locks.forceRelease(name);
    const b = locks.lock(name);
    expect(await b.acquire(false)).toBe(true);
    // Another item is there (another CAS value): A reads it, sees B's token, refuses.
    await expect(a.release()).rejects.toBeInstanceOf(LockNotHeldError);
    expect(await ownerOf(client, b.key)).toBe(b.holding?.token);
    await b.release();

    // The same for an extend.
    expect(await a.acquire(false)).toBe(true);
    await locks.forceRelease(name);
    expect(await b.acquire(false)).toBe(true);
    await expect(a.extend(10_000)).rejects.toBeInstanceOf(LockNotHeldError);
    expect(await ownerOf(client, b.key)).toBe(b.holding?.token);
    await b.release();
    await locks.close();
  });

  it('a memcached run with -C (no CAS values, every answer says 0) gets no one-request release: a DELETE carrying 0 would delete any item', async () => {
    const noCas = await startMemcached({ args: ['-C'] });
    const client = memjs.Client.create(noCas.servers, { logger: { log: () => undefined } });
    try {
      const locks = new LockManager({ backend: 'memcached', client, expire: 30_000 });
      const lock = locks.lock(uniqueName('no-cas'));
      expect(await lock.acquire(false)).toBe(true);
      expect(await casOf(client, lock.key)).toBe(0n);
      expect(lock.holding?.held).toBeUndefined();
      const before = await stats(client);
      await lock.release();
      const after = await stats(client);
      expect((after['cmd_get'] ?? NaN) - (before['cmd_get'] ?? NaN), 'read first').toBe(1);
      expect(await lock.locked()).toBe(false);
      await locks.close();
    } finally {
      client.close();
      await noCas.stop();
    }
  });
});
