/**
 * The expiry contract: the server frees an expired lock by itself, `expire: null` never expires,
 * and a holder whose lock expired cannot release (compare-and-delete on a per-acquire owner
 * token).
 */
import { LockReleaseError } from '../../sherlock.js';
import { performance } from 'node:perf_hooks';
import { expect } from '../expect.js';
import { delay, rejectsWith, SLACK_MS, timed, uniqueName } from '../helpers.js';
import { type Runner, type SubjectInfo, useBackend } from '../subject.js';

/** How long a lock without expiry is watched: longer than every backend's shortExpire. */
const NEVER_EXPIRES_WATCH_MS = 2_500;

export function expiryContract(runner: Runner, fixture: SubjectInfo): void {
  const { it } = runner;
  const backend = useBackend(runner, fixture);
  const { shortExpire } = fixture;
  /** Upper bound for the server to free an expired lock: granularity and lease checks included. */
  const freedWithin = shortExpire + SLACK_MS;

  /** Takes `name` with `expire: shortExpire`, then waits until another object `taker` gets it. */
  async function expireAndTakeOver(name: string) {
    const expiring = backend.lock(name, { expire: shortExpire });
    expect(await expiring.acquire(false)).toBe(true);
    const acquiredAt = performance.now();
    // An identical lock object (same name, options and client): only its owner token differs.
    const taker = backend.lock(name, { expire: null, retryInterval: 50 });
    expect(await taker.acquire({ timeout: freedWithin })).toBe(true);
    return { expiring, taker, expiredAfter: performance.now() - acquiredAt };
  }

  it(`the server frees a lock with expire ${shortExpire} ms: held at a third of it, free within expire + ${SLACK_MS} ms`, async () => {
    const name = uniqueName();
    const lock = backend.lock(name, { expire: shortExpire });
    expect(await lock.acquire(false)).toBe(true);
    const acquiredAt = performance.now();

    await delay(shortExpire / 3);
    const other = backend.otherLock(name, { retryInterval: 50 });
    expect(await other.acquire(false)).toBe(false);
    expect(await other.locked()).toBe(true);

    const { value } = await timed(() => other.acquire({ timeout: freedWithin }));
    expect(value).toBe(true);
    expect(performance.now() - acquiredAt).toBeLessThan(freedWithin + SLACK_MS);
    expect(await backend.isLocked(name)).toBe(true);
    await other.release();
  });

  it(`expire: null never expires: still held after ${NEVER_EXPIRES_WATCH_MS} ms, then release() works`, async () => {
    const name = uniqueName();
    const lock = backend.lock(name, { expire: null });
    expect(lock.expire).toBeNull();
    expect(await lock.acquire(false)).toBe(true);

    await delay(NEVER_EXPIRES_WATCH_MS);
    expect(await backend.otherLock(name).acquire(false)).toBe(false);
    expect(await backend.isLocked(name)).toBe(true);
    await lock.release();
    expect(await backend.isLocked(name)).toBe(false);
  });

  it("release() after the lock expired and another object took it is 'not-owned', and the new owner keeps it", async () => {
    const name = uniqueName();
    const { expiring, taker, expiredAfter } = await expireAndTakeOver(name);
    expect(expiredAfter).toBeLessThan(freedWithin + SLACK_MS);

    const { error } = await rejectsWith(LockReleaseError, () => expiring.release());
    expect(error.reason).toBe('not-owned');
    expect(error.lockName).toBe(name);
    expect(expiring.isAcquired).toBe(false);

    // The stale release deleted nothing: the new owner still holds the lock, and can release it.
    expect(await taker.locked()).toBe(true);
    expect(await backend.isLocked(name)).toBe(true);
    expect(taker.isAcquired).toBe(true);
    await taker.release();
    expect(await backend.isLocked(name)).toBe(false);
  });

  it('every acquire takes a new owner token: after its expired hold, the old holder re-acquires and releases with a fresh one', async () => {
    const name = uniqueName();
    const { expiring, taker } = await expireAndTakeOver(name);
    // The old token is refused by the server...
    expect((await rejectsWith(LockReleaseError, () => expiring.release())).error.reason).toBe(
      'not-owned',
    );
    await taker.release();

    // ...while the same object's next acquire gets a token the server accepts, and the taker's
    // ended hold cannot release it.
    expect(await expiring.acquire(false)).toBe(true);
    expect((await rejectsWith(LockReleaseError, () => taker.release())).error.reason).toBe(
      'not-acquired',
    );
    expect(await backend.isLocked(name)).toBe(true);
    await expiring.release();
    expect(await backend.isLocked(name)).toBe(false);
  });
}
