/**
 * A Redis waiter that gives up (aborted) while its own connection is down cannot leave the line
 * then: its LEAVE fails, and its entry stays in line. Its subscriber connection still listens, so
 * a release may grant it what it no longer wants. It keeps listening after it closed, and the
 * grant's message (or a reconnect's wake-up) runs LEAVE again, which passes the grant on to the
 * next in line at once; without that, the line would stall for the abandoned grant's expiry.
 * Lock, semaphore and read-write lock, on a real server of its own.
 */
import { LockAbortedError, type LockManager } from 'nestjs-sherlock';
import { describe, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { rejectionOf, waitFor } from '../support/helpers.js';
import { findKey, redisOfItsOwn } from '../support/redis-own.js';

/** The abandoned grant's expiry: what the next in line would wait without the fix. */
const ORPHAN_EXPIRE_MS = 120_000;
/** The next in line gives up long before that expiry, long after a hand-off on a loaded machine. */
const NEXT_TIMEOUT_MS = 30_000;
const SLOW_POLLING = { retryInterval: 5_000 };

/** One primitive: its line's key pattern, and a holder of it on a manager. */
interface Kind {
  readonly name: 'lock' | 'semaphore' | 'read-write lock';
  readonly line: string;
  readonly take: (
    manager: LockManager,
    name: string,
    options: { expire?: number; timeout?: number; retryInterval?: number },
  ) => {
    acquire(options?: false | { signal?: AbortSignal }): Promise<boolean>;
    release(): Promise<void>;
  };
}

const KINDS: Kind[] = [
  { name: 'lock', line: 'queue', take: (m, name, options) => m.lock(name, options) },
  { name: 'semaphore', line: 'semq', take: (m, name, options) => m.semaphore(name, 1, options) },
  {
    name: 'read-write lock',
    line: 'rwq',
    take: (m, name, options) => m.readWrite(name, options).write,
  },
];

describe('redis: a waiter aborted while its connection is down passes on a later grant (its own server)', () => {
  const own = redisOfItsOwn();

  it.for(KINDS)(
    '$name: its LEAVE failed, its entry stays in line; the release grants it, and the grant goes on to the next in line',
    async (kind, { expect, onTestFinished }) => {
      const { client, inspector, manager } = own.setUp(onTestFinished, { expire: 30_000 });
      const name = uniqueName(`orphan-${kind.line}`);
      const line = async () => {
        const key = await findKey(inspector, `*${kind.line}:*${name}`);
        return key === undefined ? [] : inspector.zrange(key, '0', '-1');
      };
      const inLine = (count: number) =>
        waitFor(async () => (await line()).length === count, { what: `${count} in line` });

      const holder = kind.take(manager(), name, {});
      expect(await holder.acquire(false)).toBe(true);

      const orphanClient = client();
      const controller = new AbortController();
      const orphan = kind.take(manager({ client: orphanClient }), name, {
        ...SLOW_POLLING,
        expire: ORPHAN_EXPIRE_MS,
      });
      const orphanOutcome = rejectionOf(orphan.acquire({ signal: controller.signal }));
      await inLine(1);
      const next = kind.take(manager(), name, {
        ...SLOW_POLLING,
        timeout: NEXT_TIMEOUT_MS,
      });
      const nextAcquired = next.acquire();
      await inLine(2);

      // Its own connection down (its subscriber, another connection, still listens): the abort's
      // LEAVE cannot run, and its entry stays first in line.
      const ended = new Promise((resolve) => orphanClient.once('end', resolve));
      orphanClient.disconnect();
      await ended;
      controller.abort();
      expect(await orphanOutcome).toBeInstanceOf(LockAbortedError);
      expect(await line(), 'LEAVE could not run: both entries still in line').toHaveLength(2);
      await orphanClient.connect();

      // The release grants the first entry, the orphan's; its message runs LEAVE again, which
      // gives the grant to the next in line (else: held for the orphan's 120 s expiry, and the
      // next in line times out after 30 s).
      await holder.release();
      expect(await nextAcquired, 'the next in line was granted').toBe(true);
      await inLine(0);
      await next.release();
      // Nothing left behind: a newcomer takes it at once.
      const newcomer = kind.take(manager(), name, {});
      expect(await newcomer.acquire(false)).toBe(true);
      await newcomer.release();
    },
  );
});
