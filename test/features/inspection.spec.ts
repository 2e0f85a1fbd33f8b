/**
 * Inspection and force-release (issue 12 part 3), on every backend of the table against the real
 * servers: `manager.inspect()` tells who holds a lock (the metadata its owner token carries), the
 * time left, the fencing token and the waiters; `manager.list()` lists the held locks of the
 * namespace; `manager.forceRelease()` deletes a lock whoever holds it, wakes the waiter, and the
 * evicted holder's signal aborts at its next renewal. Backends that cannot tell refuse with
 * `UnsupportedFeatureError`.
 */
import { hostname } from 'node:os';
import {
  type BaseLock,
  type LockForceReleasedEvent,
  LockLostError,
  LockManager,
  UnsupportedFeatureError,
} from 'nestjs-sherlock';
import { describe, expect as globalExpect, it } from 'vitest';

import {
  type BackendFixture,
  type BackendName,
  fixtures,
  uniqueName,
} from '../support/backends.js';
import { rejectionOf, waitFor } from '../support/helpers.js';

/** What each built-in backend declares it can inspect (the custom test backends: nothing). */
interface Tells {
  list: boolean;
  ttl: boolean;
  waiting: boolean;
  /** The holding's fencing token (Redis keeps one counter per cluster slot, not per holding). */
  fencing: boolean;
}
const INSPECTS: Partial<Record<BackendName, Tells>> = {
  redis: { list: true, ttl: true, waiting: true, fencing: false },
  etcd: { list: true, ttl: true, waiting: true, fencing: true },
  memory: { list: true, ttl: true, waiting: true, fencing: true },
  cluster: { list: true, ttl: true, waiting: true, fencing: true },
  redlock: { list: true, ttl: true, waiting: false, fencing: false },
  memcached: { list: false, ttl: false, waiting: false, fencing: false },
  // Its waiters wait in a line at the server (sherlock_lock_waiters): the live ones are counted.
  postgres: { list: true, ttl: true, waiting: true, fencing: true },
  zookeeper: { list: true, ttl: true, waiting: true, fencing: true },
};
const INSPECTING = fixtures.filter((f) => INSPECTS[f.name] !== undefined);
const LISTING = INSPECTING.filter((f) => INSPECTS[f.name]?.list === true);
const NOT_INSPECTING = fixtures.filter((f) => INSPECTS[f.name] === undefined);

/** One client per in-process backend (memory, cluster): its managers must share the store. */
const local = new Map<BackendName, object>();

/**
 * A manager on the test server: its own client ("another process"), closed at the end of the
 * test; on a backend that is not cross-process, the one client of the file.
 */
function managerOn(
  f: BackendFixture,
  onTestFinished: (fn: () => Promise<void>) => void,
  options: { appName?: string; namespace?: string } = {},
): LockManager {
  let client = f.capabilities.crossProcess ? undefined : local.get(f.name);
  const own = client === undefined;
  client ??= f.createClient();
  if (!f.capabilities.crossProcess) local.set(f.name, client);
  const manager = new LockManager({ backend: f.definition, client, ...options });
  onTestFinished(async () => {
    await manager.close();
    if (own && f.capabilities.crossProcess) await f.closeClient(client);
  });
  return manager;
}

/** expire for the holds: long enough for a loaded machine, where the server counts seconds too. */
const expireOf = (f: BackendFixture) =>
  f.capabilities.expiry.granularity >= 1_000 ? 6_000 : 4_000;

describe.concurrent('inspect() on every backend that can tell', () => {
  it.for(INSPECTING)(
    '$name: held by this process (host, pid, appName, acquired at), time left, fencing token; free after release',
    async (f, { expect, onTestFinished }) => {
      const manager = managerOn(f, onTestFinished, { appName: 'billing-worker' });
      const name = uniqueName('inspect');
      const expire = expireOf(f);
      const lock: BaseLock = manager.lock(name, { expire });
      const before = Date.now();
      expect(await lock.acquire(false)).toBe(true);
      const after = Date.now();

      const info = await manager.inspect(name);
      expect(info).toMatchObject({
        name,
        key: lock.key,
        backend: f.definition.name,
        held: true,
        holder: { host: hostname(), pid: process.pid, app: 'billing-worker' },
      });
      const at = info.holder?.acquiredAt?.getTime() ?? 0;
      expect(at).toBeGreaterThanOrEqual(before);
      expect(at).toBeLessThanOrEqual(after);
      expect(info.holder?.id).toMatch(/^[0-9a-f]{8}$/);
      if (INSPECTS[f.name]?.ttl) {
        expect(info.ttl).toBeGreaterThan(0);
        expect(info.ttl).toBeLessThanOrEqual(expire);
      } else {
        expect(info.ttl).toBeNull();
      }
      if (INSPECTS[f.name]?.fencing) expect(info.fencingToken).toBe(lock.fencingToken);
      else expect(info.fencingToken).toBeNull();
      expect(info.waiting).toBe(INSPECTS[f.name]?.waiting ? 0 : null);

      await lock.release();
      expect(await manager.inspect(name)).toMatchObject({ held: false, holder: null, ttl: null });
    },
  );

  it.for(INSPECTING.filter((f) => INSPECTS[f.name]?.waiting))(
    '$name: counts the acquires waiting in line',
    async (f, { expect, onTestFinished }) => {
      const manager = managerOn(f, onTestFinished);
      const other = managerOn(f, onTestFinished);
      const name = uniqueName('waiting');
      const held = manager.lock(name, { expire: expireOf(f) });
      expect(await held.acquire(false)).toBe(true);
      const waiters = [other.lock(name), other.lock(name)];
      const waiting = waiters.map((w) => w.acquire({ timeout: 30_000 }));
      await waitFor(async () => (await manager.inspect(name)).waiting === 2, {
        what: 'two waiters counted',
        timeout: 15_000,
      });
      await held.release();
      await Promise.race(waiting);
      // One of them holds now, the other still waits.
      await waitFor(async () => (await manager.inspect(name)).waiting === 1, {
        what: 'one waiter left',
        timeout: 15_000,
      });
      for (const w of waiters) if (w.isAcquired) await w.release();
      await Promise.all(waiting);
      for (const w of waiters) if (w.isAcquired) await w.release();
    },
  );

  it.for(NOT_INSPECTING)(
    '$name: refuses with UnsupportedFeatureError, naming the backend',
    async (f, { expect, onTestFinished }) => {
      const manager = managerOn(f, onTestFinished);
      const error = await rejectionOf(manager.inspect(uniqueName('none')));
      expect(error).toBeInstanceOf(UnsupportedFeatureError);
      expect(error.message).toContain(f.definition.name);
      expect(error.message).toContain('inspection');
      await expect(manager.forceRelease('x')).rejects.toBeInstanceOf(UnsupportedFeatureError);
    },
  );
});

describe.concurrent('list() on every backend that can list', () => {
  it.for(LISTING)(
    '$name: the held locks of the namespace, by prefix, sorted, without library keys',
    async (f, { expect, onTestFinished }) => {
      const namespace = uniqueName('ns');
      const manager = managerOn(f, onTestFinished, { namespace, appName: 'lister' });
      const elsewhere = managerOn(f, onTestFinished, { namespace: `${namespace}x` });
      const names = ['report:b', 'report:a', 'report:c', 'invoice:1'];
      const locks = names.map((n) => manager.lock(n, { expire: expireOf(f) }));
      for (const lock of locks) expect(await lock.acquire(false)).toBe(true);
      // A waiter (its queue key), a lock of another namespace, and a free lock.
      const waiter = manager.lock('report:a');
      const waiting = waiter.acquire({ timeout: 30_000 });
      expect(await elsewhere.lock('report:z').acquire(false)).toBe(true);
      await manager.lock('report:free').locked();

      const reports = await manager.list('report:');
      expect(reports.map((l) => l.name)).toEqual(['report:a', 'report:b', 'report:c']);
      for (const info of reports) {
        expect(info).toMatchObject({ held: true, holder: { pid: process.pid, app: 'lister' } });
      }
      expect((await manager.list()).map((l) => l.name)).toEqual([
        'invoice:1',
        'report:a',
        'report:b',
        'report:c',
      ]);
      expect(await manager.list('report:', { limit: 2 })).toHaveLength(2);
      expect(await manager.list('nothing-here:')).toEqual([]);

      await locks[1]?.release(); // report:a, to the waiter
      await waiting;
      await waiter.release();
      for (const lock of locks) if (lock.isAcquired) await lock.release();
      expect(await manager.list('report:')).toEqual([]);
    },
  );

  it.for(INSPECTING.filter((f) => !INSPECTS[f.name]?.list))(
    '$name: refuses list() with UnsupportedFeatureError saying why',
    async (f, { expect, onTestFinished }) => {
      const manager = managerOn(f, onTestFinished);
      const error = await rejectionOf(manager.list());
      expect(error).toBeInstanceOf(UnsupportedFeatureError);
      expect(error.message).toMatch(/cannot list/u);
    },
  );

  it('checks its arguments', async ({ onTestFinished }) => {
    const manager = managerOn(
      fixtures.find((f) => f.name === 'memory')!,
      onTestFinished,
    );
    await globalExpect(manager.list(3 as unknown as string)).rejects.toThrow(/prefix/u);
    await globalExpect(manager.list('', { limit: 0 })).rejects.toThrow(
      "Invalid option 'limit': got 0, expected a whole number from 1 to 100000",
    );
  });
});

describe.concurrent('forceRelease() on every backend that can inspect', () => {
  it.for(INSPECTING)(
    '$name: deletes the holding whoever holds it, wakes the waiter, the holder loses it at its next renewal',
    async (f, { expect, onTestFinished }) => {
      const holderSide = managerOn(f, onTestFinished, { appName: 'stuck-job' });
      const operator = managerOn(f, onTestFinished, { appName: 'operator' });
      const waiterSide = managerOn(f, onTestFinished);
      const name = uniqueName('force');
      const expire = expireOf(f);
      const holder = holderSide.lock(name, { expire, autoExtend: 1_000 });
      expect(await holder.acquire(false)).toBe(true);
      const lost: unknown[] = [];
      holderSide.on('lost', (event) => lost.push(event.error));
      const waiter = waiterSide.lock(name, { expire });
      const waiting = waiter.acquire({ timeout: 30_000 });
      const events: LockForceReleasedEvent[] = [];
      operator.on('forceReleased', (event) => events.push(event));

      const removed = await operator.forceRelease(name);
      expect(removed).toMatchObject({
        name,
        held: true,
        holder: { pid: process.pid, app: 'stuck-job' },
      });
      if (INSPECTS[f.name]?.fencing) expect(removed?.fencingToken).toBe(holder.fencingToken);
      expect(events).toEqual([{ name, key: holder.key, removed }]);

      // The waiter gets it (woken, or at its next poll).
      await waiting;
      expect(waiter.isAcquired).toBe(true);
      const now = await operator.inspect(name);
      expect(now.holder?.id).not.toBe(removed?.holder?.id);
      // The evicted holder learns at its next renewal (every second): its signal aborts.
      await waitFor(() => holder.signal.aborted, {
        what: 'the holder signal aborted',
        timeout: 15_000,
      });
      const reason: unknown = holder.signal.reason;
      expect(reason).toBeInstanceOf(LockLostError);
      expect((reason as LockLostError).reason).toBe('taken');
      expect(lost).toHaveLength(1);
      // The new holder was not disturbed.
      expect(waiter.signal.aborted).toBe(false);
      await waiter.release();

      // Nobody holds it: nothing removed, no event.
      expect(await operator.forceRelease(name)).toBeNull();
      expect(events).toHaveLength(1);
      await holder.release().catch(() => undefined);
    },
  );
});

describe('appName', () => {
  it('is validated: a string of 1 to 64 characters without control characters', () => {
    for (const bad of ['', 'x'.repeat(65), 'a\nb', 42]) {
      globalExpect(() => new LockManager({ backend: 'memory', appName: bad as string })).toThrow(
        /Invalid option 'appName'/u,
      );
    }
    globalExpect(new LockManager({ backend: 'memory', appName: 'a|b c%' })).toBeInstanceOf(
      LockManager,
    );
  });

  it('survives any characters in the stored token, and release still checks the owner', async ({
    onTestFinished,
  }) => {
    const manager = managerOn(
      fixtures.find((f) => f.name === 'memory')!,
      onTestFinished,
      {
        appName: 'a|b c%é',
      },
    );
    const lock = manager.lock(uniqueName('odd'));
    await lock.acquire();
    const info = await manager.inspect(lock.name);
    globalExpect(info.holder?.app).toBe('a|b c%é');
    await lock.release();
    await globalExpect(lock.release()).rejects.toThrow();
  });
});
