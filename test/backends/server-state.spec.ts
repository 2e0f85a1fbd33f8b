/**
 * What each backend really leaves on its server: every check reads the server through a separate
 * raw connection (RESP over TCP for Redis, the text protocol over TCP for Memcached, a second
 * etcd3 client for Etcd), never through the lock library.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

import { Etcd3, type IKeyValue } from 'etcd3';
import { Redis } from 'ioredis';
import memjs from 'memjs';
import {
  type BaseLock,
  EtcdLock,
  LockReleaseError,
  MemcachedLock,
  MemoryLock,
  MemoryStore,
  RedisLock,
} from 'nestjs-sherlock';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { etcdHosts, memcachedServerList, redisUrl } from '../support/env.js';
import { expectReleaseError } from '../support/helpers.js';
import { memcachedText, redisRaw } from '../support/inspect.js';
import type { RespValue } from '../support/servers.js';

/**
 * An owner token: 128 random bits as 32 lowercase hex characters, then the holder's metadata
 * (`|acquired at ms|pid|host|app`, docs/inspection.md).
 */
const TOKEN = /^[0-9a-f]{32}\|\d+\|\d+\|[^|]*\|[^|]*$/;

/** Acquires without waiting and fails the test if the lock was not free. */
async function mustAcquire(lock: BaseLock): Promise<void> {
  expect(await lock.acquire(false)).toBe(true);
}

// -------------------------------------------------------------------------------------------------
// Redis

/** One command over a fresh raw RESP connection; error replies fail the test. */
const raw = (...args: (string | number)[]): Promise<RespValue> => redisRaw(args);

describe('redis: the key on the server', () => {
  let client: Redis;
  const keys: string[] = [];
  const redisLock = (name: string, options: { namespace?: string; expire?: number | null } = {}) =>
    new RedisLock(name, { client, ...options });
  const track = (lock: BaseLock): BaseLock => {
    keys.push(lock.key);
    return lock;
  };

  beforeAll(() => {
    client = new Redis(redisUrl());
  });
  afterEach(async () => {
    if (keys.length > 0) await raw('DEL', ...keys.splice(0));
  });
  afterAll(async () => {
    await client.quit();
  });

  it('is namespace_name with a namespace and name without; holds the token; is gone after release', async () => {
    const name = uniqueName('state');
    const namespaced = track(redisLock(name, { namespace: 'ns' }));
    const bare = track(redisLock(name));
    expect(namespaced.key).toBe(`ns_${name}`);
    expect(bare.key).toBe(name);

    await mustAcquire(namespaced);
    expect(await raw('EXISTS', name)).toBe(0);
    await mustAcquire(bare);
    const namespacedToken = await raw('GET', `ns_${name}`);
    const bareToken = await raw('GET', name);
    expect(namespacedToken).toMatch(TOKEN);
    expect(bareToken).toMatch(TOKEN);
    expect(bareToken).not.toBe(namespacedToken);

    await namespaced.release();
    expect(await raw('EXISTS', `ns_${name}`)).toBe(0);
    expect(await raw('GET', name)).toBe(bareToken);
    await bare.release();
    expect(await raw('EXISTS', name)).toBe(0);
  });

  it('stores a new owner token on every acquire', async () => {
    const lock = track(redisLock(uniqueName('tokens')));
    const tokens: RespValue[] = [];
    for (let i = 0; i < 5; i++) {
      await mustAcquire(lock);
      tokens.push(await raw('GET', lock.key));
      await lock.release();
    }
    const other = track(redisLock(lock.name));
    await mustAcquire(other);
    tokens.push(await raw('GET', lock.key));
    await other.release();

    for (const token of tokens) expect(token).toMatch(TOKEN);
    expect(new Set(tokens).size).toBe(tokens.length);
  });

  it('sets PTTL to expire: 60 000 ms', async () => {
    const lock = track(redisLock(uniqueName('pttl'), { expire: 60_000 }));
    await mustAcquire(lock);
    const pttl = await raw('PTTL', lock.key);
    expect(pttl).toBeGreaterThan(50_000);
    expect(pttl).toBeLessThanOrEqual(60_000);
    await lock.release();
  });

  it('rounds a fractional expire up to whole ms and still expires (sherlock made it permanent)', async () => {
    const lock = track(redisLock(uniqueName('fraction'), { expire: 1500.4 }));
    await mustAcquire(lock);
    const pttl = await raw('PTTL', lock.key);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(1_501);
    // The server frees it by itself: no permanent lock.
    await vi.waitFor(async () => expect(await raw('EXISTS', lock.key)).toBe(0), {
      timeout: 5_000,
      interval: 100,
    });
    await expectReleaseError(lock.release(), 'not-owned');
  });

  it('expire: null really holds the lock, with no TTL (sherlock never held it)', async () => {
    const name = uniqueName('forever');
    const lock = track(redisLock(name, { expire: null }));
    expect(await lock.acquire(false)).toBe(true);
    expect(await raw('PTTL', lock.key)).toBe(-1);
    expect(await raw('GET', lock.key)).toMatch(TOKEN);

    const rival = redisLock(name, { expire: null });
    expect(await rival.acquire(false)).toBe(false);
    expect(await rival.locked()).toBe(true);

    await lock.release();
    expect(await raw('EXISTS', lock.key)).toBe(0);
    expect(await rival.acquire(false)).toBe(true);
    await rival.release();
  });

  it("does not delete another owner's value: release says 'not-owned' and leaves it", async () => {
    const lock = track(redisLock(uniqueName('foreign')));
    await mustAcquire(lock);
    expect(await raw('SET', lock.key, 'someone-else')).toBe('OK');

    await expectReleaseError(lock.release(), 'not-owned');
    expect(await raw('GET', lock.key)).toBe('someone-else');
    expect(lock.isAcquired).toBe(false);
  });
});

// -------------------------------------------------------------------------------------------------
// Memcached

const quietLogger = { log: () => undefined };

/** The first memcached server's address. */
function memcachedAddress(): { host: string; port: number } {
  const [first] = memcachedServerList();
  if (!first) throw new Error('MEMCACHED_SERVERS is empty');
  const url = new URL(`tcp://${first}`);
  return { host: url.hostname, port: Number(url.port) };
}

interface MemcachedItem {
  value: string;
  /** Remaining seconds; -1 for an item that never expires. */
  ttl: number;
  cas: string;
}

/** `mg <key> v t c` (meta get, memcached >= 1.6): value, remaining TTL and CAS; null if absent. */
async function metaGet(key: string): Promise<MemcachedItem | null> {
  const answer = await memcachedText(`mg ${key} v t c`);
  if (answer === 'EN\r\n') return null;
  const match = /^VA (\d+) t(-?\d+) c(\d+)\r\n/.exec(answer);
  if (!match) throw new Error(`memcached mg: unexpected answer ${JSON.stringify(answer)}`);
  const [header, length, ttl, cas] = match;
  return {
    value: answer.slice(header.length, header.length + Number(length)),
    ttl: Number(ttl),
    cas: cas ?? '',
  };
}

/** Raw text-protocol `set` (exptime 0 = never), which replaces the item and gives it a new CAS. */
async function rawSet(key: string, value: string): Promise<void> {
  expect(await memcachedText(`set ${key} 0 0 ${Buffer.byteLength(value)}`, value)).toBe(
    'STORED\r\n',
  );
}

/**
 * A TCP proxy in front of memcached that reads the binary-protocol requests going through it
 * (24-byte header, body length at byte 8, opcode at byte 1) and lets a test run something on the
 * server right before a request is forwarded. This interleaves a foreign write between two
 * requests of one `release()`, on the real server.
 */
class BinaryProtocolProxy {
  /** Opcodes of the requests forwarded, in order. */
  readonly forwarded: number[] = [];
  private readonly sockets = new Set<Socket>();
  private hooks = new Map<number, () => Promise<void>>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(upstream: { host: string; port: number }): Promise<BinaryProtocolProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('proxy: no port');
    const proxy = new BinaryProtocolProxy(server, address.port);
    server.on('connection', (downstream) => proxy.pipe(downstream, upstream));
    return proxy;
  }

  /** Runs `hook` once, right before the next request with this opcode is forwarded. */
  before(opcode: number, hook: () => Promise<void>): void {
    this.hooks.set(opcode, hook);
  }

  private pipe(downstream: Socket, upstream: { host: string; port: number }): void {
    const server = connect(upstream);
    for (const socket of [downstream, server]) {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    downstream.on('close', () => server.destroy());
    server.on('close', () => downstream.destroy());
    server.on('data', (chunk: Buffer) => downstream.write(chunk));

    let pending = Buffer.alloc(0);
    let forwarding = Promise.resolve();
    downstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 24) {
        const size = 24 + pending.readUInt32BE(8);
        if (pending.length < size) break;
        const request = pending.subarray(0, size);
        pending = pending.subarray(size);
        const opcode = request.readUInt8(1);
        forwarding = forwarding.then(async () => {
          const hook = this.hooks.get(opcode);
          this.hooks.delete(opcode);
          if (hook) await hook();
          this.forwarded.push(opcode);
          server.write(request);
        });
      }
    });
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const OPCODE_GET = 0x00;
const OPCODE_DELETE = 0x04;

describe('memcached: the item on the server', () => {
  let client: memjs.Client;
  const keys: string[] = [];
  const memcachedLock = (
    name: string,
    options: { namespace?: string; expire?: number | null; client?: memjs.Client } = {},
  ) => {
    const lock = new MemcachedLock(name, { client, ...options });
    keys.push(lock.key);
    return lock;
  };

  beforeAll(() => {
    client = memjs.Client.create(memcachedServerList().join(','), { logger: quietLogger });
  });
  afterEach(async () => {
    const toDelete = keys.splice(0);
    if (toDelete.length > 0) await memcachedText(...toDelete.map((key) => `md ${key} q`));
  });
  afterAll(() => {
    client.close();
  });

  it('is namespace_name with a namespace and name without; holds the token; is gone after release', async () => {
    const name = uniqueName('state');
    const namespaced = memcachedLock(name, { namespace: 'ns' });
    const bare = memcachedLock(name);
    expect(namespaced.key).toBe(`ns_${name}`);
    expect(bare.key).toBe(name);

    await mustAcquire(namespaced);
    expect(await metaGet(name)).toBeNull();
    await mustAcquire(bare);
    const namespacedItem = await metaGet(`ns_${name}`);
    const bareItem = await metaGet(name);
    expect(namespacedItem?.value).toMatch(TOKEN);
    expect(bareItem?.value).toMatch(TOKEN);
    expect(bareItem?.value).not.toBe(namespacedItem?.value);

    await namespaced.release();
    expect(await metaGet(`ns_${name}`)).toBeNull();
    expect((await metaGet(name))?.value).toBe(bareItem?.value);
    await bare.release();
    expect(await metaGet(name)).toBeNull();
  });

  it('stores a new owner token on every acquire', async () => {
    const lock = memcachedLock(uniqueName('tokens'));
    const tokens: (string | undefined)[] = [];
    for (let i = 0; i < 5; i++) {
      await mustAcquire(lock);
      tokens.push((await metaGet(lock.key))?.value);
      await lock.release();
    }
    for (const token of tokens) expect(token).toMatch(TOKEN);
    expect(new Set(tokens).size).toBe(tokens.length);
  });

  // Memcached counts whole seconds on a clock that ticks once a second, so right after a store
  // the remaining TTL is the exptime sent, or one less if the clock ticked in between.
  it.each([
    { expire: 60_000, seconds: 60 },
    { expire: 1_500, seconds: 2 },
  ])('sets the TTL to expire $expire ms rounded up: $seconds s', async ({ expire, seconds }) => {
    const lock = memcachedLock(uniqueName('ttl'), { expire });
    await mustAcquire(lock);
    const item = await metaGet(lock.key);
    expect(item?.ttl).toBeGreaterThanOrEqual(seconds - 1);
    expect(item?.ttl).toBeLessThanOrEqual(seconds);
    await lock.release();
  });

  it('turns expire: 1000 ms into 1 s, never into 0 (which memcached reads as "never expire")', async () => {
    const lock = memcachedLock(uniqueName('tiny'), { expire: 1_000 });
    await mustAcquire(lock);
    const item = await metaGet(lock.key);
    // Gone already if the server's clock ticked since the store; never an item without expiry.
    if (item !== null) expect(item.ttl).toBe(1);
    await vi.waitFor(async () => expect(await metaGet(lock.key)).toBeNull(), {
      timeout: 4_000,
      interval: 100,
    });
  });

  it('refuses an expire below 1 s (it would round up to a longer lock than asked)', () => {
    expect(() => memcachedLock(uniqueName('tiny'), { expire: 1 })).toThrow(RangeError);
    expect(() => memcachedLock(uniqueName('tiny'), { expire: 999 })).toThrow(
      /'expire'.*999.*1000 ms/,
    );
  });

  it('expire: null really holds the lock, with no expiry (t = -1)', async () => {
    const name = uniqueName('forever');
    const lock = memcachedLock(name, { expire: null });
    expect(await lock.acquire(false)).toBe(true);
    const item = await metaGet(lock.key);
    expect(item?.ttl).toBe(-1);
    expect(item?.value).toMatch(TOKEN);

    const rival = memcachedLock(name, { expire: null });
    expect(await rival.acquire(false)).toBe(false);
    expect(await rival.locked()).toBe(true);

    await lock.release();
    expect(await metaGet(lock.key)).toBeNull();
    expect(await rival.acquire(false)).toBe(true);
    await rival.release();
  });

  it("does not delete another owner's value: release says 'not-owned' and leaves it", async () => {
    const lock = memcachedLock(uniqueName('foreign'));
    await mustAcquire(lock);
    await rawSet(lock.key, 'someone-else');

    await expectReleaseError(lock.release(), 'not-owned');
    expect((await metaGet(lock.key))?.value).toBe('someone-else');
    expect(lock.isAcquired).toBe(false);
  });

  it('owns by value: re-storing the same token before release (new CAS) still lets it release', async () => {
    // release() reads the item (value + CAS) and then deletes with that CAS. A change made before
    // the read is seen by the read: the value is still this owner's token, so the lock is still
    // owned, and the delete carries the new CAS.
    const lock = memcachedLock(uniqueName('same-value'));
    await mustAcquire(lock);
    const before = await metaGet(lock.key);
    await rawSet(lock.key, before?.value ?? '');
    const after = await metaGet(lock.key);
    expect(after?.value).toBe(before?.value);
    expect(after?.cas).not.toBe(before?.cas);

    await lock.release();
    expect(await metaGet(lock.key)).toBeNull();
  });

  describe('a change between the GET and the DELETE of a release that reads the item first (interleaved by a proxy)', () => {
    let proxy: BinaryProtocolProxy;
    let proxied: memjs.Client;

    beforeAll(async () => {
      proxy = await BinaryProtocolProxy.start(memcachedAddress());
      proxied = memjs.Client.create(`127.0.0.1:${proxy.port}`, { logger: quietLogger });
    });
    afterAll(async () => {
      proxied.close();
      await proxy.close();
    });

    /** Acquires through the proxy, runs `foreignWrite` just before release's DELETE, releases. */
    async function releaseWithInterleavedWrite(
      foreignWrite: (key: string, token: string) => Promise<void>,
    ): Promise<{ lock: MemcachedLock; token: string; error: unknown }> {
      const lock = memcachedLock(uniqueName('interleaved'), { client: proxied });
      await mustAcquire(lock);
      const token = (await metaGet(lock.key))?.value ?? '';
      expect(token).toMatch(TOKEN);
      // The same token re-stored before the release: still this owner's by value, but the CAS
      // value the add answered with is stale, so release's one-request DELETE is refused and it
      // falls back to GET + CAS-checked DELETE, the path interleaved here (before its DELETE).
      await rawSet(lock.key, token);
      proxy.before(OPCODE_DELETE, async () => {
        proxy.before(OPCODE_DELETE, () => foreignWrite(lock.key, token));
      });
      const seen = proxy.forwarded.length;
      const error = await lock.release().then(
        () => undefined,
        (err: unknown) => err,
      );
      // The foreign write really happened between the fallback's GET and its DELETE.
      expect(proxy.forwarded.slice(seen)).toEqual([OPCODE_DELETE, OPCODE_GET, OPCODE_DELETE]);
      return { lock, token, error };
    }

    it('the same token re-stored (value unchanged, CAS changed): the DELETE is refused', async () => {
      // Proves the DELETE carries the CAS read by the GET: a value comparison alone would delete.
      const { lock, token, error } = await releaseWithInterleavedWrite((key, value) =>
        rawSet(key, value),
      );
      expect(error).toBeInstanceOf(LockReleaseError);
      expect((error as LockReleaseError).reason).toBe('not-owned');
      expect((await metaGet(lock.key))?.value).toBe(token);
    });

    it('the lock expired and another owner took it: its lock survives the release', async () => {
      const { lock, error } = await releaseWithInterleavedWrite(async (key) => {
        expect(await memcachedText(`md ${key}`)).toBe('HD\r\n');
        expect(await memcachedText(`add ${key} 0 0 10`, 'new-owner!')).toBe('STORED\r\n');
      });
      expect(error).toBeInstanceOf(LockReleaseError);
      expect((error as LockReleaseError).reason).toBe('not-owned');
      expect((await metaGet(lock.key))?.value).toBe('new-owner!');
    });
  });
});

// -------------------------------------------------------------------------------------------------
// Etcd

describe('etcd: the entries on the server', () => {
  let client: Etcd3;
  /** A second client, only used to look at the server. */
  let inspector: Etcd3;
  const prefixes: string[] = [];
  const etcdLock = (name: string, options: { namespace?: string; expire?: number | null } = {}) => {
    const lock = new EtcdLock(name, { client, ...options });
    prefixes.push(lock.entryPrefix);
    return lock;
  };
  /** The entries of a lock (`key` + U+001F + token), first in line first. */
  const entries = async (key: string): Promise<IKeyValue[]> =>
    (await inspector.getAll().prefix(`${key}\u001f`).sort('Create', 'Ascend').exec()).kvs;
  /** The entry holding the lock: the first in line. */
  const holderOf = async (key: string): Promise<IKeyValue | undefined> => (await entries(key))[0];
  const leaseOf = async (key: string) => {
    const kv = await holderOf(key);
    if (!kv) throw new Error(`etcd: no entry under ${key}`);
    return inspector.leaseClient.leaseTimeToLive({ ID: kv.lease });
  };

  beforeAll(() => {
    client = new Etcd3({ hosts: etcdHosts() });
    inspector = new Etcd3({ hosts: etcdHosts() });
  });
  afterEach(async () => {
    await Promise.all(prefixes.splice(0).map((prefix) => inspector.delete().prefix(prefix).exec()));
  });
  afterAll(() => {
    client.close();
    inspector.close();
  });

  it('is namespace/name + U+001F + token with a namespace, name + U+001F + token without; gone after release', async () => {
    const name = uniqueName('state');
    const namespaced = etcdLock(name, { namespace: 'ns' });
    const bare = etcdLock(name);
    expect(namespaced.key).toBe(`ns/${name}`);
    expect(bare.key).toBe(name);
    expect(namespaced.entryPrefix).toBe(`ns/${name}\u001f`);

    await mustAcquire(namespaced);
    expect(await entries(name)).toEqual([]);
    await mustAcquire(bare);
    const namespacedEntry = await holderOf(`ns/${name}`);
    const bareEntry = await holderOf(name);
    const namespacedToken = namespacedEntry?.value.toString();
    const bareToken = bareEntry?.value.toString();
    expect(namespacedToken).toMatch(TOKEN);
    expect(bareToken).toMatch(TOKEN);
    expect(namespacedEntry?.key.toString()).toBe(`ns/${name}\u001f${namespacedToken}`);
    expect(bareEntry?.key.toString()).toBe(`${name}\u001f${bareToken}`);
    expect(bareToken).not.toBe(namespacedToken);

    await namespaced.release();
    expect(await entries(`ns/${name}`)).toEqual([]);
    expect((await holderOf(name))?.value.toString()).toBe(bareToken);
    await bare.release();
    expect(await entries(name)).toEqual([]);
  });

  it('stores a new owner token on every acquire', async () => {
    const lock = etcdLock(uniqueName('tokens'));
    const tokens: (string | undefined)[] = [];
    for (let i = 0; i < 5; i++) {
      await mustAcquire(lock);
      tokens.push((await holderOf(lock.key))?.value.toString());
      await lock.release();
    }
    for (const token of tokens) expect(token).toMatch(TOKEN);
    expect(new Set(tokens).size).toBe(tokens.length);
  });

  it('a blocking waiter keeps one entry in line, behind the holder, and watches it; a non-blocking attempt leaves none', async () => {
    const name = uniqueName('line');
    const holder = etcdLock(name);
    await mustAcquire(holder);
    expect(await etcdLock(name).acquire(false)).toBe(false);
    expect(await entries(name)).toHaveLength(1);

    const waiter = etcdLock(name);
    const waiting = waiter.acquire({ timeout: 20_000 });
    await vi.waitFor(async () => expect(await entries(name)).toHaveLength(2), {
      timeout: 5_000,
      interval: 20,
    });
    const [first, second] = await entries(name);
    expect(first?.create_revision).toBe(holder.fencingToken);
    await holder.release();
    expect(await waiting).toBe(true);
    expect(waiter.fencingToken).toBe(second?.create_revision);
    expect(await entries(name)).toHaveLength(1);
    await waiter.release();
    expect(await entries(name)).toEqual([]);
  });

  it('a waiter keeps its place (and lease) alive while it waits longer than its expire, then holds a full lease', async () => {
    const name = uniqueName('long-wait');
    const holder = etcdLock(name, { expire: 3_000 });
    await mustAcquire(holder);
    const waiter = etcdLock(name, { expire: 3_000 });
    const waiting = waiter.acquire({ timeout: 30_000 });
    await vi.waitFor(async () => expect(await entries(name)).toHaveLength(2), {
      timeout: 5_000,
      interval: 20,
    });
    const queued = (await entries(name))[1];
    // The holder keeps its lock for 3 x its expire; the waiter's lease (3 s) must be kept alive.
    for (let i = 0; i < 6; i++) {
      await new Promise((resolve) => setTimeout(resolve, 1_200));
      await holder.extend();
    }
    expect((await entries(name))[1]?.create_revision, 'still in line, same entry').toBe(
      queued?.create_revision,
    );
    await holder.release();
    expect(await waiting).toBe(true);
    expect(waiter.fencingToken).toBe(queued?.create_revision);
    expect(Number((await leaseOf(name)).TTL)).toBeGreaterThanOrEqual(2);
    expect(waiter.signal.aborted).toBe(false);
    await waiter.release();
  });

  it('attaches a lease of expire 60 000 ms = 60 s; after release the next acquire on the same client reuses it (renewed to 60 s); a lease in use is never handed out', async () => {
    const name = uniqueName('lease');
    const lock = etcdLock(name, { expire: 60_000 });
    await mustAcquire(lock);
    const kv = await holderOf(lock.key);
    expect(kv?.lease).not.toBe('0');
    const lease = await leaseOf(lock.key);
    expect(Number(lease.grantedTTL)).toBe(60);
    expect(Number(lease.TTL)).toBeGreaterThan(50);
    expect(Number(lease.TTL)).toBeLessThanOrEqual(60);

    await lock.release();
    expect(await entries(lock.key)).toEqual([]);
    // Kept (no keys on it) and renewed at the next acquire: one grant and one revoke saved.
    await mustAcquire(lock);
    expect((await holderOf(lock.key))?.lease).toBe(kv?.lease);
    expect(Number((await leaseOf(lock.key)).TTL)).toBeGreaterThan(50);
    await lock.release();
    // The pool is per client: another lock object on the same client reuses it too...
    const other = etcdLock(name, { expire: 60_000 });
    await mustAcquire(other);
    expect((await holderOf(lock.key))?.lease).toBe(kv?.lease);
    // ...but a lease attached to a held entry is never given to another entry.
    const elsewhere = etcdLock(uniqueName('lease-other'), { expire: 60_000 });
    await mustAcquire(elsewhere);
    expect((await holderOf(elsewhere.key))?.lease).not.toBe(kv?.lease);
    await other.release();
    await elsewhere.release();
  });

  it('a lease whose TTL differs, or which ran out, is not reused', async () => {
    const name = uniqueName('lease-change');
    const short = etcdLock(name, { expire: 2_000 });
    await mustAcquire(short);
    const first = (await holderOf(short.key))?.lease;
    await short.release();
    // The lease (2 s, no keys left) runs out; etcd then reports TTL -1 for it.
    await vi.waitFor(
      async () =>
        expect((await inspector.leaseClient.leaseTimeToLive({ ID: first ?? '' })).TTL).toBe('-1'),
      { timeout: 8_000, interval: 200 },
    );
    await mustAcquire(short);
    const second = (await holderOf(short.key))?.lease;
    expect(second).not.toBe(first);
    expect(Number((await leaseOf(short.key)).grantedTTL)).toBe(2);
    await short.release();
  });

  // etcd raises a TTL below its minimum (ceil(1.5 x election timeout) = 2 s by default) to it.
  it.each([
    { expire: 1_500, atLeast: 2 },
    { expire: 1_000, atLeast: 1 },
  ])('rounds expire $expire ms up to a lease of >= $atLeast s', async ({ expire, atLeast }) => {
    const lock = etcdLock(uniqueName('short'), { expire });
    await mustAcquire(lock);
    const lease = await leaseOf(lock.key);
    expect(Number(lease.grantedTTL)).toBeGreaterThanOrEqual(atLeast);
    expect(Number(lease.grantedTTL)).toBeLessThanOrEqual(2);
    await lock.release();
  });

  it('refuses an expire below its granularity of 1 s, which the server cannot honour', () => {
    expect(() => etcdLock(uniqueName('tiny'), { expire: 999 })).toThrow(RangeError);
    expect(() => etcdLock(uniqueName('tiny'), { expire: 999 })).toThrow(/'expire'.*999/);
  });

  it("expire: null really holds the lock, with no lease (lease '0'), also after waiting in line", async () => {
    const name = uniqueName('forever');
    const lock = etcdLock(name, { expire: null });
    expect(await lock.acquire(false)).toBe(true);
    const kv = await holderOf(lock.key);
    expect(kv?.lease).toBe('0');
    expect(kv?.value.toString()).toMatch(TOKEN);

    const rival = etcdLock(name, { expire: null });
    expect(await rival.acquire(false)).toBe(false);
    expect(await rival.locked()).toBe(true);

    // A blocking waiter waits with a lease (a dead waiter must not block the line for ever) and
    // holds without one.
    const waiting = rival.acquire({ timeout: 20_000 });
    await vi.waitFor(async () => expect(await entries(name)).toHaveLength(2), {
      timeout: 5_000,
      interval: 20,
    });
    expect((await entries(name))[1]?.lease).not.toBe('0');
    await lock.release();
    expect(await waiting).toBe(true);
    expect((await holderOf(name))?.lease).toBe('0');
    await rival.release();
    expect(await entries(name)).toEqual([]);
  });

  it("does not delete another owner's value: release says 'not-owned' and leaves it", async () => {
    const lock = etcdLock(uniqueName('foreign'));
    await mustAcquire(lock);
    const entry = await holderOf(lock.key);
    await inspector
      .put(entry?.key ?? '')
      .value('someone-else')
      .exec();

    await expectReleaseError(lock.release(), 'not-owned');
    expect((await holderOf(lock.key))?.value.toString()).toBe('someone-else');
    expect(lock.isAcquired).toBe(false);
  });
});

// -------------------------------------------------------------------------------------------------
// Memory

describe('memory: the entry in the MemoryStore', () => {
  it('is namespace_name with a namespace and name without; holds the token; is gone after release', async () => {
    const store = new MemoryStore();
    const namespaced = new MemoryLock('job', { client: store, namespace: 'ns' });
    const bare = new MemoryLock('job', { client: store });
    expect(namespaced.key).toBe('ns_job');

    await mustAcquire(namespaced);
    expect(store.size).toBe(1);
    expect(store.get('job')).toBeUndefined();
    await mustAcquire(bare);
    expect(store.size).toBe(2);
    expect(store.get('ns_job')).toMatch(TOKEN);
    expect(store.get('job')).toMatch(TOKEN);
    expect(store.get('job')).not.toBe(store.get('ns_job'));

    await namespaced.release();
    expect(store.get('ns_job')).toBeUndefined();
    expect(store.size).toBe(1);
    await bare.release();
    expect(store.size).toBe(0);
  });

  it('stores a new owner token on every acquire', async () => {
    const store = new MemoryStore();
    const lock = new MemoryLock('job', { client: store });
    const tokens: (string | undefined)[] = [];
    for (let i = 0; i < 5; i++) {
      await mustAcquire(lock);
      tokens.push(store.get('job'));
      await lock.release();
    }
    for (const token of tokens) expect(token).toMatch(TOKEN);
    expect(new Set(tokens).size).toBe(tokens.length);
  });

  it('drops an expired entry when it is next looked at (get, size, acquire)', async () => {
    const store = new MemoryStore();
    const lock = new MemoryLock('job', { client: store, expire: 30 });
    await mustAcquire(lock);
    expect(store.get('job')).toMatch(TOKEN);
    await sleep(80);

    expect(store.size).toBe(0);
    expect(store.get('job')).toBeUndefined();
    const next = new MemoryLock('job', { client: store });
    await mustAcquire(next);
    await expectReleaseError(lock.release(), 'not-owned');
    expect(store.get('job')).toMatch(TOKEN);
    await next.release();
  });

  it('expire: null keeps the entry until it is released', async () => {
    const store = new MemoryStore();
    const lock = new MemoryLock('job', { client: store, expire: null });
    await mustAcquire(lock);
    await sleep(50);
    expect(store.size).toBe(1);
    expect(await new MemoryLock('job', { client: store }).acquire(false)).toBe(false);
    await lock.release();
    expect(store.size).toBe(0);
  });

  it('keeps separate stores separate', async () => {
    const first = new MemoryStore();
    const second = new MemoryStore();
    const a = new MemoryLock('job', { client: first });
    const b = new MemoryLock('job', { client: second });
    await mustAcquire(a);
    await mustAcquire(b);
    expect(first.get('job')).not.toBe(second.get('job'));
    await a.release();
    await b.release();
  });
});
