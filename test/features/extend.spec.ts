/**
 * `lock.extend(ms?)`: owner-checked and atomic. It sets the lock's time to live on the server (read
 * back raw: Redis PTTL, Memcached `mg t`, the Etcd key's lease, the MemoryStore), the lock then
 * outlives its original expiry, and a lock that another owner holds meanwhile is never touched.
 */
import {
  EtcdLock,
  LockBackendError,
  LockError,
  LockLostError,
  MemcachedLock,
} from 'nestjs-sherlock';
import { afterAll, describe, it } from 'vitest';

import {
  type BackendFixture,
  EXTENDING,
  fixture,
  NOT_EXTENDING,
  uniqueName,
} from '../support/backends.js';
import {
  delay,
  expectLost,
  expectReleaseError,
  lostEventsOf,
  rejectionOf,
  waitFor,
} from '../support/helpers.js';
import { closeEtcdInspector, etcdInspector, etcdLease } from '../support/inspect.js';
import { scope } from '../support/locks.js';

afterAll(closeEtcdInspector);

/** Values of `ms` every backend refuses, and those outside the expiry limits `f` declares. */
function badExtensions(
  f: BackendFixture,
): { ms: unknown; type: typeof TypeError | typeof RangeError }[] {
  const { minimum, maximum } = f.capabilities.expiry;
  return [
    { ms: 0, type: RangeError },
    { ms: -1, type: RangeError },
    { ms: Number.NaN, type: RangeError },
    { ms: Number.POSITIVE_INFINITY, type: RangeError },
    { ms: '30000', type: TypeError },
    { ms: null, type: TypeError },
    // A server counting whole seconds would round less up to a longer lock than asked.
    ...(minimum > 1
      ? [
          { ms: minimum - 1, type: RangeError },
          { ms: 1, type: RangeError },
        ]
      : []),
    // Above its maximum memcached reads an expiry as an absolute Unix time.
    ...(maximum !== null ? [{ ms: maximum + 1, type: RangeError }] : []),
  ];
}

describe.concurrent('extend() on every backend that declares it', () => {
  it.for(EXTENDING)(
    '$name: sets the TTL on the server (ms, or expire by default); the lock outlives its original expiry',
    async (f, { expect, onTestFinished }) => {
      const { lock, client } = scope(onTestFinished);
      const name = uniqueName('extend');
      // Not shortExpire (1 s on Redis): the signal of a lock not confirmed before expire minus a
      // margin aborts for good, and on a loaded machine the acquire → extend steps took longer.
      const expire = Math.max(f.shortExpire, 5_000);
      const held = lock(f, name, { expire }, client(f));
      const other = lock(f, name);
      expect(await held.acquire(false)).toBe(true);
      const token = held.fencingToken;
      expect(await f.server.ttl(held)).toBeLessThanOrEqual(expire);

      await held.extend(30_000);
      const extended = await f.server.ttl(held);
      expect(extended).toBeGreaterThan(25_000);
      expect(extended).toBeLessThanOrEqual(30_000);
      expect(held.fencingToken, 'the same holding').toBe(token);

      // Well past the original expiry: still held, by this owner, and the signal knows it.
      await delay(expire + 1_000);
      expect(await other.locked()).toBe(true);
      expect(await other.acquire(false)).toBe(false);
      expect(held.signal.aborted).toBe(false);

      await held.extend();
      const back = await f.server.ttl(held);
      expect(back).toBeGreaterThan(0);
      expect(back).toBeLessThanOrEqual(expire);
      await held.release();
    },
  );

  it.for(EXTENDING)(
    "$name: once its key is gone and another owner holds the lock: rejects 'not-owned', leaves the new owner's lock as it was, aborts the signal ('taken') and emits 'lost'",
    async (f, { expect, onTestFinished }) => {
      const { lock, client } = scope(onTestFinished);
      const name = uniqueName('taken');
      const held = lock(f, name, { expire: 30_000 }, client(f));
      const events = lostEventsOf(held, onTestFinished);
      expect(await held.acquire(false)).toBe(true);
      const signal = held.signal;

      await f.server.remove(held); // what an expiry does
      const next = lock(f, name, { expire: 20_000 });
      expect(await next.acquire(false)).toBe(true);
      const owner = await f.server.value(held);
      expect(owner).toBeDefined();

      await expectReleaseError(held.extend(60_000), 'not-owned');
      expect(await f.server.value(held)).toBe(owner);
      expect(await f.server.ttl(held)).toBeLessThanOrEqual(20_000);

      expectLost(signal, ['taken']);
      expect(events).toHaveLength(1);
      expect(events[0]?.name).toBe(name);
      expect(events[0]?.key).toBe(held.key);
      expect(events[0]?.error).toBe(signal.reason);
      expect((signal.reason as LockLostError).lockName).toBe(name);

      await expectReleaseError(held.release(), 'not-owned');
      expect(await next.locked()).toBe(true);
      await next.release();
    },
  );

  it.for(EXTENDING)(
    "$name: after a real expiry and a new owner, extend rejects 'not-owned' and the new owner's TTL is not raised",
    async (f, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const name = uniqueName('expired');
      const held = lock(f, name, { expire: f.shortExpire });
      const next = lock(f, name, { expire: 5_000 });
      expect(await held.acquire(false)).toBe(true);
      await waitFor(async () => !(await next.locked()), {
        what: 'the expiry',
        timeout: f.shortExpire + 5_000,
      });
      expect(await next.acquire(false)).toBe(true);
      const owner = await f.server.value(next);
      expect(owner).toBeDefined();

      await expectReleaseError(held.extend(60_000), 'not-owned');
      expect(await f.server.value(next)).toBe(owner);
      expect(await f.server.ttl(next)).toBeLessThanOrEqual(5_000);
      // Aborted (by its loss timer before the expiry already, or by this extend).
      expectLost(held.signal, ['unconfirmed', 'taken']);
      await next.release();
    },
  );

  it.for(EXTENDING)(
    "$name: on a lock object that never acquired, or after its release: 'not-acquired'",
    async (f, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const fresh = lock(f, uniqueName('never'));
      await expectReleaseError(fresh.extend(5_000), 'not-acquired');
      await expectReleaseError(fresh.extend(), 'not-acquired');
      expect(await fresh.acquire(false)).toBe(true);
      await fresh.release();
      await expectReleaseError(fresh.extend(5_000), 'not-acquired');
      expect(await fresh.locked()).toBe(false);
    },
  );

  it.for(EXTENDING)(
    '$name: validates ms (its declared expiry limits included) before touching the server: the TTL and the holding stay as they were',
    async (f, { expect, onTestFinished }) => {
      const { lock, client } = scope(onTestFinished);
      const held = lock(f, uniqueName('bad-ms'), { expire: 10_000 }, client(f));
      expect(await held.acquire(false)).toBe(true);

      for (const { ms, type } of badExtensions(f)) {
        const error = await rejectionOf(held.extend(ms as number));
        expect(error, `extend(${String(ms)})`).toBeInstanceOf(type);
      }
      const ttl = await f.server.ttl(held);
      expect(ttl).toBeGreaterThan(5_000);
      expect(ttl).toBeLessThanOrEqual(10_000);
      expect(held.isAcquired).toBe(true);
      expect(held.signal.aborted).toBe(false);
      await held.release();
    },
  );

  it.for(EXTENDING)(
    '$name: a lock without expiry cannot extend() by default (TypeError) but extend(ms) gives it one',
    async (f, { expect, onTestFinished }) => {
      const { lock, client } = scope(onTestFinished);
      const held = lock(f, uniqueName('forever'), { expire: null }, client(f));
      expect(await held.acquire(false)).toBe(true);
      expect(await f.server.ttl(held)).toBe(-1);
      expect(await rejectionOf(held.extend())).toBeInstanceOf(TypeError);
      await held.extend(5_000);
      const ttl = await f.server.ttl(held);
      expect(ttl).toBeGreaterThanOrEqual(4_000);
      expect(ttl).toBeLessThanOrEqual(5_000);
      expect(held.signal.aborted).toBe(false);
      await held.release();
    },
  );

  it('memcached accepts exactly 30 days (and 1000 ms); etcd accepts 1000 ms', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const memcached = lock('memcached', uniqueName('month'), { expire: 5_000 });
    expect(memcached).toBeInstanceOf(MemcachedLock);
    expect(await memcached.acquire(false)).toBe(true);
    await memcached.extend(30 * 24 * 3600 * 1000);
    expect(await fixture('memcached').server.ttl(memcached)).toBeGreaterThan(29 * 24 * 3600 * 1000);
    await memcached.extend(1_000);
    const second = await fixture('memcached').server.ttl(memcached);
    expect(second === null || second <= 1_000, `TTL ${second}`).toBe(true);
    await memcached.release().catch(() => undefined); // may have expired already

    const etcd = lock('etcd', uniqueName('second'), { expire: 5_000 });
    expect(etcd).toBeInstanceOf(EtcdLock);
    expect(await etcd.acquire(false)).toBe(true);
    await etcd.extend(1_000);
    const lease = await etcdLease(etcd.key);
    expect(lease?.granted).toBeGreaterThanOrEqual(1);
    expect(lease?.granted).toBeLessThanOrEqual(2); // raised to etcd's minimum TTL
    await etcd.release();
  });

  it('etcd: extend moves the key to a new lease of ceil(ms / 1000) s and revokes the old one', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const held = lock('etcd', uniqueName('lease'), { expire: 5_000 });
    expect(await held.acquire(false)).toBe(true);
    const before = await etcdLease(held.key);
    expect(before?.granted).toBe(5);
    await held.extend(20_500);
    const after = await etcdLease(held.key);
    expect(after?.id).not.toBe(before?.id);
    expect(after?.granted).toBe(21);
    await waitFor(
      async () =>
        (await etcdInspector().leaseClient.leaseTimeToLive({ ID: before?.id ?? '' })).TTL === '-1',
      { what: 'the old lease revoked', timeout: 3_000 },
    );
    await held.release();
  });

  it('etcdgateway (a custom LockBackend): extend moves the key to a new lease of ceil(ms / 1000) s and revokes the old one; release revokes its lease', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const held = lock('etcdgateway', uniqueName('gw-lease'), { expire: 5_000 });
    const leaseOf = async () => {
      const [kv] = (await etcdInspector().get(held.key).exec()).kvs;
      if (!kv) return undefined;
      const lease = await etcdInspector().leaseClient.leaseTimeToLive({ ID: kv.lease });
      return { id: kv.lease, granted: Number(lease.grantedTTL) };
    };
    const revoked = async (id: string | undefined) =>
      (await etcdInspector().leaseClient.leaseTimeToLive({ ID: id ?? '' })).TTL === '-1';
    expect(await held.acquire(false)).toBe(true);
    const before = await leaseOf();
    expect(before?.granted).toBe(5);
    await held.extend(20_500);
    const after = await leaseOf();
    expect(after?.id).not.toBe(before?.id);
    expect(after?.granted).toBe(21);
    expect(await revoked(before?.id)).toBe(true);
    await held.release();
    expect(await leaseOf()).toBeUndefined();
    expect(await revoked(after?.id)).toBe(true);
  });
});

describe.concurrent('extend() on every backend that does not declare it', () => {
  it.for(NOT_EXTENDING)(
    '$name: extend rejects with a LockError saying so, not a backend failure; the lock stays held',
    async (f, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const held = lock(f, uniqueName('no-extend'), { expire: 30_000 });
      const other = lock(f, held.name);
      expect(held.canExtend).toBe(false);
      expect(await held.acquire(false)).toBe(true);
      for (const ms of [5_000, undefined]) {
        const error = await rejectionOf(held.extend(ms));
        expect(error).toBeInstanceOf(LockError);
        expect(error).not.toBeInstanceOf(LockBackendError);
        expect(error.message).toBe(`The ${f.name} backend cannot extend locks`);
      }
      expect(held.isAcquired).toBe(true);
      expect(held.signal.aborted).toBe(false);
      expect(await other.acquire(false)).toBe(false);
      await held.release();
      expect(await other.locked()).toBe(false);
    },
  );
});
