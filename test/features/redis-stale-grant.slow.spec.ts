/**
 * A Redis waiter frozen (SIGSTOP: as a long GC pause or a stalled VM) while a release grants it
 * the lock by a message: the message waits in its socket while the grant expires at the server
 * and another client takes the lock. On resume the waiter must not start holding that stale
 * grant (two holders): it reads the server's time of the grant in the message, sees the grant
 * expired, and queues again; it gets the lock after the other holder releases, with a higher
 * fencing token. A lock, and a permit of a semaphore of 1. A real child process
 * (test/fixtures/stale-grant-worker.ts) on the real server.
 */
import { setTimeout as delay } from 'node:timers/promises';

import { RedisLock } from 'nestjs-sherlock';
import { describe, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { spawnStaleGrantChild } from '../support/stale-grant-child.js';
import { redisUrl } from '../support/env.js';
import { waitFor } from '../support/helpers.js';
import { findKey, redisClients } from '../support/redis-own.js';

describe('redis: a grant that expired while its waiter was frozen', () => {
  for (const kind of ['lock', 'semaphore'] as const) {
    it(`${kind}: does not start a holding: the waiter queues again and gets it after the new holder`, async ({
      expect,
      onTestFinished,
    }) => {
      const url = redisUrl();
      const made = redisClients(url, onTestFinished);
      const { inspector, defer } = made;
      const client = made.client();
      const manager = made.manager({ client });
      const name = uniqueName(`stale-grant-${kind}`);
      const make = () =>
        kind === 'lock'
          ? new RedisLock(name, { client, expire: 30_000 })
          : manager.semaphore(name, 1, { expire: 30_000 });
      const first = make();
      const second = make();
      /** How many wait in line, and whether it is held (a semaphore's keys found by name). */
      const inLine = () =>
        made.inLine(first instanceof RedisLock ? first.queueKey : `*semq:*${name}`);
      const held = async () =>
        first instanceof RedisLock
          ? (await inspector.exists(first.key)) === 1
          : (await findKey(inspector, `*sem:*${name}`)) !== undefined;
      expect(await first.acquire(false)).toBe(true);

      const { child, acquired, secondHolds, exited, output } = spawnStaleGrantChild(
        'stale-grant-worker.ts',
        [url, name, kind],
        defer,
      );

      // The child waits in line (its entry is in the line), then is frozen.
      await waitFor(async () => (await inLine()) === 1, {
        what: 'the child queued',
        timeout: 20_000,
      });
      expect(child.kill('SIGSTOP')).toBe(true);
      // The release grants the frozen child by a message (its 1 s expiry starts now).
      await first.release();
      expect(await inLine(), 'granted to the frozen child').toBe(0);
      expect(await held(), 'granted to the frozen child').toBe(true);
      // The grant expires at the server; another client takes it.
      await waitFor(async () => !(await held()), { what: 'the grant expired', timeout: 10_000 });
      await delay(1_000);
      expect(await second.acquire(false)).toBe(true);
      secondHolds(true);
      // The child resumes and reads the old message while `second` holds.
      expect(child.kill('SIGCONT')).toBe(true);
      await delay(3_000);
      expect(acquired, 'no holding started from the stale grant').toEqual([]);
      expect(await inLine(), 'the child queued again').toBe(1);

      // `second` releases: the child is granted now, with a higher fencing token.
      secondHolds(false);
      await second.release();
      await waitFor(() => acquired.length > 0, { what: 'the child acquired', timeout: 20_000 });
      expect(await exited, output()).toBe(0);
      expect(acquired).toHaveLength(1);
      const [holding] = acquired;
      expect(holding?.whileSecondHeld).toBe(false);
      expect(holding?.aborted).toBe(false);
      expect(BigInt(holding?.token ?? -1)).toBeGreaterThan(BigInt(second.fencingToken ?? -1));
    }, 60_000);
  }
});
