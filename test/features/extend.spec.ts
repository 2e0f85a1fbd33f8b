/**
 * `lock.extend(ms?)`: owner-checked and atomic. It sets the lock's time to live on the server (read
 * back raw: Redis PTTL, Memcached `mg t`, the Etcd key's lease, the MemoryStore), the lock then
 * outlives its original expiry, and a lock that another owner holds meanwhile is never touched.
 */
import {
  EtcdLock,
  LockBackendError,
  LockError,
  lockEvents,
  type LockLostEvent,
  LockLostError,
  MemcachedLock,
} from 'nestjs-sherlock';
import { afterAll, describe, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import {
  closeEtcdInspector,
  delay,
  deleteByHand,
  etcdInspector,
  etcdLease,
  expectLost,
  expectReleaseError,
  rejection,
  scope,
  serverTtl,
  serverValue,
  TOKEN_BACKENDS,
  type TokenBackend,
  waitUntil,
} from './helpers.js';

afterAll(closeEtcdInspector);

/** A short expire each backend honours as such (memcached and etcd count whole seconds). */
const SHORT: Record<TokenBackend, number> = {
  redis: 1_000,
  memory: 1_000,
  memcached: 2_000,
  etcd: 2_000,
};

/** The lost events of `lock` from now on. */
function lostEventsOf(lock: object, onTestFinished: (fn: () => void) => void): LockLostEvent[] {
  const events: LockLostEvent[] = [];
  const listener = (event: LockLostEvent) => {
    if (event.lock === lock) events.push(event);
  };
  lockEvents.on('lost', listener);
  onTestFinished(() => void lockEvents.off('lost', listener));
  return events;
}

describe.concurrent('extend()', () => {
  it.for(TOKEN_BACKENDS)(
    '%s: sets the TTL on the server (ms, or expire by default); the lock outlives its original expiry',
    async (backend, { expect, onTestFinished }) => {
      const { lock, client } = scope(onTestFinished);
      const name = uniqueName('extend');
      const expire = SHORT[backend];
      const store = client(backend);
      const held = lock(backend, name, { expire }, store);
      const other = lock(backend, name);
      expect(await held.acquire(false)).toBe(true);
      const token = held.fencingToken;
      expect(await serverTtl(backend, held.key, store)).toBeLessThanOrEqual(expire);

      await held.extend(30_000);
      const extended = await serverTtl(backend, held.key, store);
      expect(extended).toBeGreaterThan(25_000);
      expect(extended).toBeLessThanOrEqual(30_000);
      expect(held.fencingToken, 'the same holding').toBe(token);

      // Well past the original expiry: still held, by this owner, and the signal knows it.
      await delay(expire + 1_000);
      expect(await other.locked()).toBe(true);
      expect(await other.acquire(false)).toBe(false);
      expect(held.signal.aborted).toBe(false);

      await held.extend();
      const back = await serverTtl(backend, held.key, store);
      expect(back).toBeGreaterThan(0);
      expect(back).toBeLessThanOrEqual(expire);
      await held.release();
    },
  );

  it.for(TOKEN_BACKENDS)(
    "%s: once its key is gone and another owner holds the lock: rejects 'not-owned', leaves the new owner's lock as it was, aborts the signal ('taken') and emits 'lost'",
    async (backend, { expect, onTestFinished }) => {
      const { lock, client } = scope(onTestFinished);
      const name = uniqueName('taken');
      const store = client(backend);
      const held = lock(backend, name, { expire: 30_000 }, store);
      const events = lostEventsOf(held, onTestFinished);
      expect(await held.acquire(false)).toBe(true);
      const signal = held.signal;

      await deleteByHand(backend, held.key, store); // what an expiry does
      const next = lock(backend, name, { expire: 20_000 });
      expect(await next.acquire(false)).toBe(true);
      const owner = await serverValue(backend, held.key, store);

      await expectReleaseError(expect, held.extend(60_000), 'not-owned');
      expect(await serverValue(backend, held.key, store)).toBe(owner);
      expect(await serverTtl(backend, held.key, store)).toBeLessThanOrEqual(20_000);

      expectLost(expect, signal, ['taken']);
      expect(events).toHaveLength(1);
      expect(events[0]?.name).toBe(name);
      expect(events[0]?.key).toBe(held.key);
      expect(events[0]?.error).toBe(signal.reason);
      expect((signal.reason as LockLostError).lockName).toBe(name);

      await expectReleaseError(expect, held.release(), 'not-owned');
      expect(await next.locked()).toBe(true);
      await next.release();
    },
  );

  it("redis: after a real expiry and a new owner, extend rejects 'not-owned' and the new owner's PTTL is not raised", async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const name = uniqueName('expired');
    const held = lock('redis', name, { expire: 1_000 });
    const next = lock('redis', name, { expire: 5_000 });
    expect(await held.acquire(false)).toBe(true);
    await waitUntil(async () => !(await next.locked()), 'the expiry', 5_000);
    expect(await next.acquire(false)).toBe(true);
    const owner = await serverValue('redis', next.key);

    await expectReleaseError(expect, held.extend(60_000), 'not-owned');
    expect(await serverValue('redis', next.key)).toBe(owner);
    expect(await serverTtl('redis', next.key)).toBeLessThanOrEqual(5_000);
    // Aborted (by its loss timer before the expiry already, or by this extend).
    expectLost(expect, held.signal, ['unconfirmed', 'taken']);
    await next.release();
  });

  it.for(TOKEN_BACKENDS)(
    "%s: on a lock object that never acquired, or after its release: 'not-acquired'",
    async (backend, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const fresh = lock(backend, uniqueName('never'));
      await expectReleaseError(expect, fresh.extend(5_000), 'not-acquired');
      await expectReleaseError(expect, fresh.extend(), 'not-acquired');
      expect(await fresh.acquire(false)).toBe(true);
      await fresh.release();
      await expectReleaseError(expect, fresh.extend(5_000), 'not-acquired');
      expect(await fresh.locked()).toBe(false);
    },
  );

  it.for(TOKEN_BACKENDS)(
    '%s: validates ms before touching the server (the TTL and the holding stay as they were)',
    async (backend, { expect, onTestFinished }) => {
      const { lock, client } = scope(onTestFinished);
      const store = client(backend);
      const held = lock(backend, uniqueName('bad-ms'), { expire: 10_000 }, store);
      expect(await held.acquire(false)).toBe(true);

      const bad: { ms: unknown; type: typeof TypeError | typeof RangeError }[] = [
        { ms: 0, type: RangeError },
        { ms: -1, type: RangeError },
        { ms: Number.NaN, type: RangeError },
        { ms: Number.POSITIVE_INFINITY, type: RangeError },
        { ms: '30000', type: TypeError },
        { ms: null, type: TypeError },
      ];
      if (backend === 'memcached' || backend === 'etcd') {
        // Whole seconds on the server: less than one would be rounded up to a longer lock.
        bad.push({ ms: 999, type: RangeError }, { ms: 1, type: RangeError });
      }
      if (backend === 'memcached') {
        // Above 30 days memcached reads the expiry as an absolute Unix time.
        bad.push({ ms: 30 * 24 * 3600 * 1000 + 1, type: RangeError });
      }
      for (const { ms, type } of bad) {
        const error = await rejection(held.extend(ms as number));
        expect(error, `extend(${String(ms)})`).toBeInstanceOf(type);
      }
      const ttl = await serverTtl(backend, held.key, store);
      expect(ttl).toBeGreaterThan(5_000);
      expect(ttl).toBeLessThanOrEqual(10_000);
      expect(held.isAcquired).toBe(true);
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
    expect(await serverTtl('memcached', memcached.key)).toBeGreaterThan(29 * 24 * 3600 * 1000);
    await memcached.extend(1_000);
    const second = await serverTtl('memcached', memcached.key);
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

  it('redis: a lock without expiry cannot extend() by default (TypeError) but extend(ms) gives it one', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const held = lock('redis', uniqueName('forever'), { expire: null });
    expect(await held.acquire(false)).toBe(true);
    expect(await serverTtl('redis', held.key)).toBe(-1);
    expect(await rejection(held.extend())).toBeInstanceOf(TypeError);
    await held.extend(5_000);
    const ttl = await serverTtl('redis', held.key);
    expect(ttl).toBeGreaterThan(4_000);
    expect(ttl).toBeLessThanOrEqual(5_000);
    await held.release();
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
    await waitUntil(
      async () =>
        (await etcdInspector().leaseClient.leaseTimeToLive({ ID: before?.id ?? '' })).TTL === '-1',
      'the old lease revoked',
      3_000,
    );
    await held.release();
  });

  it('etcdhttp (a backend without _extend): extend rejects with a LockError saying so, not a backend failure; the lock stays held', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const held = lock('etcdhttp', uniqueName('no-extend'));
    expect(held.canExtend).toBe(false);
    expect(lock('redis', uniqueName('can')).canExtend).toBe(true);
    expect(await held.acquire(false)).toBe(true);
    const error = await rejection(held.extend(5_000));
    expect(error).toBeInstanceOf(LockError);
    expect(error).not.toBeInstanceOf(LockBackendError);
    expect((error as LockError).message).toMatch(/etcdhttp backend cannot extend/);
    expect(held.isAcquired).toBe(true);
    expect(held.signal.aborted).toBe(false);
    await held.release();
  });
});
