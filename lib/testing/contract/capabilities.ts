/**
 * The capabilities contract: what the backend declares (`capabilities`) is what it does on the
 * real server: fencing tokens, extend and autoExtend, push or poll hand-off; what it does not
 * declare is refused cleanly by the API (nothing is skipped).
 */
import { backends, LockBackendError, LockError } from '../../sherlock.js';
import { expect } from '../expect.js';
import {
  delay,
  expectStrictlyIncreasing,
  now,
  rejectsWith,
  SLACK_MS,
  throwsWith,
  uniqueName,
} from '../helpers.js';
import { type Runner, type SubjectInfo, useBackend } from '../subject.js';

/** Far above what a pushed hand-off takes, far below the retryInterval of a pushed waiter. */
const HANDOFF_LIMIT_MS = 1_000;

export function capabilitiesContract(runner: Runner, fixture: SubjectInfo): void {
  const { it } = runner;
  const backend = useBackend(runner, fixture);
  const { capabilities, definition } = fixture;
  const { server } = fixture.subject;

  it('are those of its registered definition, complete, and its locks report extend', () => {
    expect(backends.get(fixture.name)).toBe(definition);
    expect(capabilities).toBe(definition.capabilities);
    expect(typeof capabilities.fencing).toBe('boolean');
    expect(typeof capabilities.extend).toBe('boolean');
    expect(typeof capabilities.crossProcess).toBe('boolean');
    expect(['push', 'poll']).toContain(capabilities.handOff);
    expect(capabilities.expiry.granularity).toBeGreaterThanOrEqual(1);
    expect(capabilities.expiry.minimum).toBeGreaterThanOrEqual(1);
    expect(backend.lock(uniqueName()).canExtend).toBe(capabilities.extend);
  });

  if (capabilities.fencing) {
    it('fencing: each holding, from either client, gets a token above the last; none when not held; a refused rival gets none', async () => {
      const name = uniqueName('fence');
      const objects = [backend.lock(name), backend.otherLock(name)];
      const tokens: (string | undefined)[] = [];
      for (let round = 0; round < 3; round++) {
        for (const [i, held] of objects.entries()) {
          const rival = objects[1 - i];
          expect(held.fencingToken).toBeUndefined();
          expect(await held.acquire(false)).toBe(true);
          tokens.push(held.fencingToken);
          expect(await rival?.acquire(false)).toBe(false);
          expect(rival?.fencingToken).toBeUndefined();
          await held.release();
          expect(held.fencingToken).toBeUndefined();
        }
      }
      expect(tokens).toHaveLength(6);
      expectStrictlyIncreasing(tokens);
    });
  } else {
    it('no fencing: fencingToken is undefined before, while and after the lock is held', async () => {
      const held = backend.lock(uniqueName('no-fence'));
      expect(held.fencingToken).toBeUndefined();
      expect(await held.acquire(false)).toBe(true);
      expect(held.isAcquired).toBe(true);
      expect(held.fencingToken).toBeUndefined();
      await held.release();
      expect(held.fencingToken).toBeUndefined();
    });
  }

  if (capabilities.extend) {
    it('extend: extend(30000) sets the TTL on the server (checked given a server inspector), keeping the holding; autoExtend true renews every expire / 3', async () => {
      // Long enough that the loss signal cannot give up on the lock before extend() confirms it,
      // even on a loaded machine (with shortExpire, 1 s on Redis, CI once took longer).
      const expire = Math.max(fixture.shortExpire, 5_000);
      const held = backend.lock(uniqueName('extend'), { expire });
      expect(await held.acquire(false)).toBe(true);
      const token = held.fencingToken;
      const before = await server?.ttl(held);
      if (server) {
        expect(before).toBeGreaterThan(0);
        expect(before).toBeLessThanOrEqual(expire);
      }

      await held.extend(30_000);
      if (server) {
        const after = await server.ttl(held);
        expect(after).toBeGreaterThan(25_000);
        expect(after).toBeLessThanOrEqual(30_000);
      }
      expect(held.fencingToken).toBe(token);
      expect(held.signal.aborted).toBe(false);
      expect(await backend.otherLock(held.name).acquire(false)).toBe(false);
      await held.release();
      expect(await backend.isLocked(held.name)).toBe(false);

      expect(backend.lock(uniqueName(), { expire: 3 * expire, autoExtend: true }).renewEvery).toBe(
        expire,
      );
    });
  } else {
    it('no extend: extend() rejects with a LockError saying so (nothing sent, the lock stays held); autoExtend is a RangeError at construction', async () => {
      const held = backend.lock(uniqueName('no-extend'), { expire: 30_000 });
      expect(await held.acquire(false)).toBe(true);
      const { error } = await rejectsWith(LockError, () => held.extend(60_000));
      expect(error).not.toBeInstanceOf(LockBackendError);
      expect(error.message).toBe(`The ${fixture.name} backend cannot extend locks`);
      expect(held.isAcquired).toBe(true);
      expect(held.signal.aborted).toBe(false);
      expect(await backend.isLocked(held.name)).toBe(true);
      await held.release();

      const refused = throwsWith(RangeError, () =>
        backend.lock(uniqueName(), { expire: 30_000, autoExtend: true }),
      );
      expect(refused.message).toContain(`the ${fixture.name} backend cannot extend a lock`);
    });
  }

  if (capabilities.handOff === 'push') {
    it(`push hand-off: a waiter with retryInterval 5000 gets the lock within ${HANDOFF_LIMIT_MS} ms of the release`, async () => {
      const name = uniqueName('push');
      const holder = await backend.hold(name, { expire: 30_000 });
      const waiter = backend.lock(name, { retryInterval: 5_000, timeout: 10_000 });
      const acquired = waiter.acquire().then((ok) => ({ ok, at: now() }));
      await delay(300);
      await holder.release();
      const releasedAt = now();
      const { ok, at } = await acquired;
      expect(ok).toBe(true);
      expect(at - releasedAt).toBeLessThan(HANDOFF_LIMIT_MS);
    });
  } else {
    it('poll hand-off: a waiter with retryInterval 200 gets the lock after the release, by polling', async () => {
      const name = uniqueName('poll');
      const holder = await backend.hold(name, { expire: 30_000 });
      const waiter = backend.lock(name, { retryInterval: 200, timeout: 10_000 });
      const acquired = waiter.acquire().then((ok) => ({ ok, at: now() }));
      await delay(300);
      expect(waiter.isAcquired).toBe(false);
      await holder.release();
      const releasedAt = now();
      const { ok, at } = await acquired;
      expect(ok).toBe(true);
      expect(at - releasedAt).toBeLessThan(SLACK_MS);
    });
  }
}
