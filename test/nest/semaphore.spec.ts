/**
 * LockService.semaphore() on every built-in backend through the Nest module: a Semaphore of the
 * registration's manager (its backend, client and defaults), never more than `limit` holders,
 * given back at application shutdown; Memcached refuses it with an UnsupportedFeatureError.
 */
import { LockService, Semaphore, SherlockModule, UnsupportedFeatureError } from 'nestjs-sherlock';
import { describe, expect, it } from 'vitest';

import { ALL_BACKENDS, backendOptions, delay, uniqueName, useApps } from './helpers.js';

const apps = useApps();

async function serviceOn(backend: (typeof ALL_BACKENDS)[number]) {
  const namespace = uniqueName('nest-sem');
  const app = await apps.start({
    imports: [SherlockModule.forRoot({ ...backendOptions(backend), namespace, expire: 30_000 })],
  });
  return { app, locks: app.get(LockService), namespace };
}

describe.each(ALL_BACKENDS.filter((backend) => backend !== 'memcached'))(
  '%s: LockService.semaphore()',
  (backend) => {
    it('is a Semaphore of the registration (its manager, namespace and defaults), per-call options winning', async () => {
      const { locks, namespace } = await serviceOn(backend);
      const sem = locks.semaphore('reports', 3, { timeout: 1_234 });
      expect(sem).toBeInstanceOf(Semaphore);
      expect(sem.manager).toBe(locks.manager);
      expect(sem.limit).toBe(3);
      expect(sem.namespace).toBe(namespace);
      expect(sem.expire).toBe(30_000);
      expect(sem.timeout).toBe(1_234);
    });

    it('lets at most `limit` run at once, and the shutdown gives back the permits still held', async () => {
      const { app, locks } = await serviceOn(backend);
      const name = uniqueName('nest-sem');
      let inside = 0;
      let most = 0;
      await Promise.all(
        Array.from({ length: 6 }, () =>
          locks.semaphore(name, 2).using(async () => {
            inside += 1;
            most = Math.max(most, inside);
            await delay(50);
            inside -= 1;
          }),
        ),
      );
      expect(most).toBe(2);
      const kept = locks.semaphore(name, 2);
      expect(await kept.acquire(false)).toBe(true);
      await apps.close(app);
      expect(kept.isAcquired).toBe(false);
      const { locks: again } = await serviceOn(backend);
      // Another registration (its own namespace) sees nothing of it; the same key is free too.
      const probe = again.manager.semaphore(name, 2, { namespace: kept.namespace });
      expect(await probe.count()).toBe(0);
    });
  },
);

describe('memcached: LockService.semaphore()', () => {
  it('throws an UnsupportedFeatureError naming the backend and why', async () => {
    const { locks } = await serviceOn('memcached');
    const error = (() => {
      try {
        locks.semaphore('reports', 3);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(UnsupportedFeatureError);
    expect((error as UnsupportedFeatureError).backend).toBe('memcached');
  });
});
