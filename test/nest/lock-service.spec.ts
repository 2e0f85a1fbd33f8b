/**
 * The LockService API on a real Redis: create, acquire, tryAcquire, run, isLocked, and the
 * re-entrancy of run() within one call chain.
 */
import {
  type BaseLock,
  LockService,
  LockTimeoutError,
  RedisLock,
  SherlockModule,
} from 'nestjs-sherlock';
import { performance } from 'node:perf_hooks';
import { beforeEach, describe, expect, it } from 'vitest';

import { redisUrl } from '../support/env.js';
import { delay, rejectionOf, uniqueName, useApps, useProbe, waitFor } from './helpers.js';

const apps = useApps();
const probe = useProbe('redis');
/** The module's namespace: every key of this file is `${NAMESPACE}_name`. */
const NAMESPACE = uniqueName('svc');
const EXPIRE = 30_000;

let locks: LockService;
let name: string;

beforeEach(async () => {
  const app = await apps.start({
    imports: [
      SherlockModule.forRoot({
        backend: 'redis',
        connection: redisUrl(),
        namespace: NAMESPACE,
        expire: EXPIRE,
        retryInterval: 20,
      }),
    ],
  });
  locks = app.get(LockService);
  name = uniqueName('service');
});

const onServer = (lockName: string) => probe.isLocked(lockName, NAMESPACE);

describe('LockService.create()', () => {
  it('returns a lock that is not acquired, with the module options', async () => {
    const lock = locks.create(name);
    expect(lock).toBeInstanceOf(RedisLock);
    expect(lock.name).toBe(name);
    expect(lock.namespace).toBe(NAMESPACE);
    expect(lock.key).toBe(`${NAMESPACE}_${name}`);
    expect(lock.expire).toBe(EXPIRE);
    expect(lock.retryInterval).toBe(20);
    expect(lock.isAcquired).toBe(false);
    expect(await onServer(name)).toBe(false);
  });

  it('per-lock options override the module options', () => {
    const lock = locks.create(name, { expire: 5_000, namespace: null });
    expect(lock.expire).toBe(5_000);
    expect(lock.key).toBe(name);
  });
});

describe('LockService.acquire()', () => {
  it('resolves the held lock', async () => {
    const lock = await locks.acquire(name);
    expect(lock.isAcquired).toBe(true);
    expect(await onServer(name)).toBe(true);
    await lock.release();
    expect(await onServer(name)).toBe(false);
  });

  it('rejects with LockTimeoutError when the lock is held elsewhere', async () => {
    await probe.hold(name, { namespace: NAMESPACE });
    const err = await rejectionOf(locks.acquire(name, { timeout: 300 }));
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect((err as LockTimeoutError).timeout).toBe(300);
    expect((err as LockTimeoutError).lockName).toBe(name);
  });

  it('waits for a release within its timeout', async () => {
    const other = await probe.hold(name, { namespace: NAMESPACE });
    const acquiring = locks.acquire(name, { timeout: 10_000 });
    await delay(200);
    await other.release();
    const lock = await acquiring;
    expect(lock.isAcquired).toBe(true);
    await lock.release();
  });
});

describe('LockService.tryAcquire()', () => {
  it('resolves the held lock when the lock is free', async () => {
    const lock = await locks.tryAcquire(name);
    expect(lock?.isAcquired).toBe(true);
    expect(await onServer(name)).toBe(true);
    await lock?.release();
  });

  it('resolves null at once when the lock is held elsewhere', async () => {
    await probe.hold(name, { namespace: NAMESPACE });
    const started = performance.now();
    expect(await locks.tryAcquire(name)).toBeNull();
    // One attempt, not a wait for the module timeout (10 s).
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});

describe('LockService.run()', () => {
  it('runs fn holding the lock, returns its result and releases', async () => {
    let seen: { lock: BaseLock; held: boolean; onServer: boolean } | undefined;
    const result = await locks.run(name, async (lock) => {
      seen = { lock, held: lock.isAcquired, onServer: await onServer(name) };
      return 42;
    });
    expect(result).toBe(42);
    expect(seen?.lock.name).toBe(name);
    expect(seen?.lock.key).toBe(`${NAMESPACE}_${name}`);
    expect(seen?.held).toBe(true);
    expect(seen?.onServer).toBe(true);
    expect(seen?.lock.isAcquired).toBe(false);
    expect(await onServer(name)).toBe(false);
  });

  it('releases when fn throws, and rethrows the same error', async () => {
    const failure = new Error('fn failed');
    const err = await rejectionOf(
      locks.run(name, async () => {
        expect(await onServer(name)).toBe(true);
        throw failure;
      }),
    );
    expect(err).toBe(failure);
    expect(await onServer(name)).toBe(false);
  });

  it('rejects with LockTimeoutError without running fn when the lock stays held', async () => {
    await probe.hold(name, { namespace: NAMESPACE });
    let ran = false;
    const err = await rejectionOf(
      locks.run(
        name,
        () => {
          ran = true;
        },
        { timeout: 200 },
      ),
    );
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect(ran).toBe(false);
  });

  it('is re-entrant within one call chain while an independent run waits', async () => {
    const events: { what: string; at: number }[] = [];
    const mark = (what: string) => events.push({ what, at: performance.now() });
    const at = (what: string) => events.find((event) => event.what === what)?.at ?? NaN;

    const first = locks.run(name, async (outer) => {
      mark('first:start');
      // A nested run on the same name must not wait for itself (short timeout: a deadlock
      // would reject with LockTimeoutError instead of hanging).
      await locks.run(
        name,
        async (inner) => {
          expect(inner).toBe(outer);
          mark('first:nested');
          await delay(400);
        },
        { timeout: 1_000 },
      );
      mark('first:end');
    });
    await waitFor(() => events.length > 0, { what: 'the first run starting' });
    // Started from outside the first chain: an independent caller, which must wait.
    const second = locks.run(name, () => mark('second'));

    await Promise.all([first, second]);
    expect(events.map((event) => event.what)).toEqual([
      'first:start',
      'first:nested',
      'first:end',
      'second',
    ]);
    expect(at('second')).toBeGreaterThanOrEqual(at('first:end'));
    expect(await onServer(name)).toBe(false);
  });

  it('nested runs on different names each take their own lock', async () => {
    const other = uniqueName('service-other');
    const held = await locks.run(name, () =>
      locks.run(other, async () => [await onServer(name), await onServer(other)]),
    );
    expect(held).toEqual([true, true]);
    expect(await onServer(name)).toBe(false);
    expect(await onServer(other)).toBe(false);
  });
});

describe('LockService.isLocked()', () => {
  it('reports whether anyone holds the lock, in the module namespace', async () => {
    expect(await locks.isLocked(name)).toBe(false);
    const other = await probe.hold(name, { namespace: NAMESPACE });
    expect(await locks.isLocked(name)).toBe(true);
    // The same name outside the namespace is another key.
    expect(await locks.isLocked(name, { namespace: null })).toBe(false);
    await other.release();
    expect(await locks.isLocked(name)).toBe(false);
  });
});
