/**
 * MultiLock on the fake backend with the fake clock: the canonical order (sorted by key,
 * duplicates once), all or none (non-blocking, blocking, abort: what was taken is released before
 * the call settles), one deadline for the whole set (each member waits for what is left of it, and
 * a slow server cannot stretch it past `timeout + operationTimeout`), a member lost while the
 * others were taken, release / extend of all with partial failures, the composed signal, fencing
 * tokens, validation, and the default manager.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configure, resetConfiguration } from '../../lib/core/configuration.js';
import {
  LockAbortedError,
  LockBackendError,
  LockBusyError,
  LockError,
  LockLostError,
  LockNotHeldError,
  LockTimeoutError,
  MultiLockError,
} from '../../lib/core/errors/index.js';
import { LockManager } from '../../lib/core/manager.js';
import { messages } from '../../lib/core/messages.js';
import { MultiLock } from '../../lib/core/multi-lock.js';
import { registerFake } from './fake-backend.js';
import {
  advance,
  flush,
  rejected,
  rejectionOf,
  sinceStart,
  useFakeClock,
  watch,
} from './helpers.js';

const fake = registerFake({ name: 'unitMulti', fencing: true });
const { control } = fake;

useFakeClock();

let locks: LockManager;

beforeEach(() => {
  control.reset();
  locks = new LockManager({ backend: 'unitMulti', retryInterval: 100 });
});

afterEach(() => resetConfiguration());

/** The keys of the acquire calls, in order. */
const acquiredKeys = () => control.callsOf('acquire').map((call) => call.key);
/** When each acquire call on `key` was made (fake ms since the test started). */
const attemptsOn = (key: string) =>
  control
    .callsOf('acquire')
    .filter((call) => call.key === key)
    .map((call) => sinceStart(call.at));

/** The error `run` throws synchronously. */
function thrown(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    return error as Error;
  }
  return expect.unreachable('expected a throw');
}

describe('the canonical order', () => {
  it('takes the members sorted by key, each name once, whatever order they were given in', async () => {
    const all = locks.lockAll(['c', 'a', 'b', 'a', 'c']);
    expect(all.names).toEqual(['a', 'b', 'c']);
    expect(all.name).toBe('a, b, c');
    expect(all.locks.map((lock) => lock.key)).toEqual(['a', 'b', 'c']);
    expect(await all.acquire()).toBe(true);
    expect(acquiredKeys()).toEqual(['a', 'b', 'c']);
    expect(all.isAcquired).toBe(true);
    expect(
      locks
        .held()
        .map((lock) => lock.name)
        .sort(),
    ).toEqual(['a', 'b', 'c']);
  });

  it('orders by key (namespace included), by UTF-16 code units, not by locale', () => {
    const all = locks.lockAll(['é', 'z', 'Z', 'a'], { namespace: 'ns' });
    expect(all.locks.map((lock) => lock.key)).toEqual(['ns_Z', 'ns_a', 'ns_z', 'ns_é']);
  });

  it('two callers taking overlapping sets in opposite orders both finish, one after the other', async () => {
    const first = locks.lockAll(['x', 'y', 'z']);
    const second = locks.lockAll(['z', 'y', 'x']);
    const a = watch(first.using(() => advance(0).then(() => 'first')));
    const b = watch(second.using(() => 'second'));
    await advance(500);
    expect(a.value).toBe('first');
    expect(b.value).toBe('second');
    expect(control.store.size).toBe(0);
  });
});

describe('all or none', () => {
  it('non-blocking: a member held elsewhere resolves false, releases what it took and never tries the rest', async () => {
    control.holdElsewhere('b');
    const all = locks.lockAll(['a', 'b', 'c']);
    expect(await all.acquire(false)).toBe(false);
    expect(acquiredKeys()).toEqual(['a', 'b']);
    expect(control.callsOf('release').map((call) => call.key)).toEqual(['a']);
    expect(control.holder('a')).toBeUndefined();
    expect(control.holder('b')).toBe('someone-else');
    expect(all.isAcquired).toBe(false);
    expect(all.fencingTokens.size).toBe(0);
    expect(all.signal.aborted).toBe(true);
    expect(locks.held()).toEqual([]);
    // The others are free afterwards: anyone can take them.
    expect(await locks.lock('a').acquire(false)).toBe(true);
    expect(await locks.lock('c').acquire(false)).toBe(true);
  });

  it('acquireOrBusy names the busy member, with its retryAfter', async () => {
    control.reportHolderTtl = true;
    control.holdElsewhere('b', 4_000);
    const busy = await locks.lockAll(['a', 'b']).acquireOrBusy(false);
    expect(busy).toBeInstanceOf(LockBusyError);
    expect((busy as LockBusyError).lockName).toBe('a, b');
    expect((busy as LockBusyError).member).toBe('b');
    expect((busy as LockBusyError).retryAfter).toBe(4_000);
    expect((busy as LockBusyError).message).toBe(messages.busyAll('a, b', 'b'));
  });

  it('non-blocking: a server failure on a member rejects with its LockBackendError, holding none', async () => {
    control.failNext('acquire', 1, { key: 'b' });
    const all = locks.lockAll(['a', 'b']);
    const error = await rejectionOf(all.acquire(false));
    expect(error).toBeInstanceOf(LockBackendError);
    expect((error as LockBackendError).lockName).toBe('b');
    expect(control.store.size).toBe(0);
  });

  it('blocking: a member that stays busy makes the whole acquire time out; what it took is released first', async () => {
    control.holdElsewhere('b');
    const all = locks.lockAll(['a', 'b'], { timeout: 1_000 });
    const acquiring = watch(all.acquire());
    await advance(999);
    expect(acquiring.state).toBe('pending');
    expect(control.holder('a')).toBeDefined(); // held while it waits for b
    await advance(1);
    const error = rejected(acquiring, LockTimeoutError);
    expect(error.lockName).toBe('a, b');
    expect(error.member).toBe('b');
    expect(error.timeout).toBe(1_000);
    expect(error.message).toBe(messages.timeoutAll('a, b', 1_000, 'b'));
    expect(error.cause).toBeInstanceOf(LockTimeoutError);
    expect((error.cause as LockTimeoutError).lockName).toBe('b');
    expect(error.retryAfter).toBeUndefined(); // the fake reports no holder TTL
    expect(control.holder('a')).toBeUndefined();
    expect(all.isAcquired).toBe(false);
    expect(locks.held()).toEqual([]);
  });
});

describe('one deadline for the whole set', () => {
  it('a member waits only for what the earlier ones left of the timeout', async () => {
    control.holdElsewhere('a');
    control.holdElsewhere('b');
    const all = locks.lockAll(['a', 'b'], { timeout: 1_000 });
    const acquiring = watch(all.acquire());
    await advance(590);
    control.drop('a'); // a is taken at the attempt at 600
    await advance(410);
    expect(rejected(acquiring, LockTimeoutError).member).toBe('b');
    expect(acquiring.at).toBe(1_000); // not 600 + 1 000
    expect(attemptsOn('a').at(-1)).toBe(600);
    expect(attemptsOn('b')[0]).toBe(600);
    expect(attemptsOn('b').at(-1)).toBe(1_000);
    expect(control.store.has('a')).toBe(false);
  });

  it('gets the set when the busy members free up within the timeout', async () => {
    control.holdElsewhere('a', 250);
    control.holdElsewhere('c', 700);
    const all = locks.lockAll(['a', 'b', 'c'], { timeout: 1_000 });
    const acquiring = watch(all.acquire());
    await advance(1_000);
    expect(acquiring.value).toBe(true);
    expect(acquiring.at).toBe(750); // attempts every 75 ms: a at 300, c at 750
    expect(all.isAcquired).toBe(true);
  });

  it('a slow server cannot stretch it past timeout + operationTimeout, even with members left to take', async () => {
    control.holdElsewhere('a', 950);
    const all = locks.lockAll(['a', 'b', 'c'], { timeout: 1_000, operationTimeout: 300 });
    const acquiring = watch(all.acquire());
    await advance(974);
    // a is taken at 975; b then answers in 290 ms (granted), c would answer in 290 ms more.
    control.delayNext('acquire', 0);
    control.delayNext('acquire', 290);
    control.delayNext('acquire', 290);
    await advance(1_000);
    const error = rejected(acquiring, LockTimeoutError);
    expect(error.member).toBe('c');
    expect(acquiring.at).toBe(1_300);
    await advance(1_000); // c's late grant is undone by the core
    expect(control.store.size).toBe(0);
    expect(locks.held()).toEqual([]);
  });

  it('timeout 0 makes one attempt per member', async () => {
    const all = locks.lockAll(['a', 'b'], { timeout: 0 });
    expect(await all.acquire()).toBe(true);
    await all.release();
    control.holdElsewhere('b');
    const error = await rejectionOf(all.acquire());
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(attemptsOn('b')).toHaveLength(2);
  });

  it('the timeout given to acquire() wins over the members’', async () => {
    control.holdElsewhere('b');
    const all = locks.lockAll(['a', 'b'], { timeout: 5_000 });
    const acquiring = watch(all.acquire({ timeout: 200 }));
    await advance(200);
    expect(rejected(acquiring, LockTimeoutError).timeout).toBe(200);
    expect(acquiring.at).toBe(200);
  });

  it('a member lost while the later ones were taken (its expiry ran out) means starting over, within the deadline', async () => {
    control.holdElsewhere('b', 950);
    const all = locks.lockAll(['a', 'b'], { timeout: 5_000, expire: 1_000 });
    const acquiring = watch(all.acquire());
    await advance(1_000);
    expect(acquiring.value).toBe(true);
    // a's signal aborted at 900 (a tenth before its expiry); b was taken at 975, so the set was
    // released and taken again at once, with fresh expiries.
    expect(acquiring.at).toBe(975);
    expect(acquiredKeys().slice(-3)).toEqual(['b', 'a', 'b']);
    expect(
      control
        .callsOf('release')
        .map((call) => call.key)
        .sort(),
    ).toEqual(['a', 'b']);
    expect(all.signal.aborted).toBe(false);
    expect(all.isAcquired).toBe(true);
    const onA = control.callsOf('acquire').filter((call) => call.key === 'a');
    expect(onA.length).toBeGreaterThan(1);
    expect(control.holder('a')).toBe(onA.at(-1)?.token);
  });
});

describe('abort', () => {
  it('rejects with LockAbortedError naming the set, and releases what it took', async () => {
    control.holdElsewhere('b');
    const controller = new AbortController();
    const all = locks.lockAll(['a', 'b']);
    const acquiring = watch(all.acquire({ signal: controller.signal }));
    await advance(300);
    expect(control.holder('a')).toBeDefined();
    controller.abort(new Error('stop'));
    await flush();
    const error = rejected(acquiring, LockAbortedError);
    expect(error.lockName).toBe('a, b');
    expect((error.cause as Error).message).toBe('stop');
    expect(acquiring.at).toBe(300);
    expect(control.holder('a')).toBeUndefined();
    expect(locks.held()).toEqual([]);
  });

  it('an already-aborted signal takes nothing', async () => {
    const error = await rejectionOf(
      locks.lockAll(['a', 'b']).acquire({ signal: AbortSignal.abort() }),
    );
    expect(error).toBeInstanceOf(LockAbortedError);
    expect(control.calls.acquire).toBe(0);
  });
});

describe('holding the set', () => {
  it('fencingTokens has each member’s token; release() releases them all; the signal stays un-aborted', async () => {
    const all = locks.lockAll(['b', 'a']);
    await all.acquire();
    expect([...all.fencingTokens]).toEqual([
      ['a', '1'],
      ['b', '2'],
    ]);
    const signal = all.signal;
    expect(signal.aborted).toBe(false);
    await all.release();
    expect(control.store.size).toBe(0);
    expect(all.isAcquired).toBe(false);
    expect(signal.aborted).toBe(false);
    expect(all.signal.aborted).toBe(true);
    const error = await rejectionOf(all.release());
    expect(error).toBeInstanceOf(LockNotHeldError);
    expect((error as LockNotHeldError).reason).toBe('not-acquired');
  });

  it('release() reports the members it could not release (MultiLockError) after releasing the others; again, it retries them', async () => {
    const all = locks.lockAll(['a', 'b', 'c']);
    await all.acquire();
    control.failNext('release', 1, { key: 'b' });
    const error = await rejectionOf(all.release());
    expect(error).toBeInstanceOf(MultiLockError);
    const multi = error as MultiLockError;
    expect(multi.operation).toBe('release');
    expect(multi.failed.map((f) => f.name)).toEqual(['b']);
    expect(multi.failed[0]?.error).toBeInstanceOf(LockBackendError);
    expect(multi.succeeded).toEqual(['a', 'c']);
    expect(multi.cause).toBe(multi.failed[0]?.error);
    expect(multi.message).toMatch(
      /Could not release 1 of the 3 locks 'a, b, c': 'b' \(.*\); the others were released/,
    );
    expect([...control.store.keys()]).toEqual(['b']);
    expect(all.isAcquired).toBe(false);
    await all.release(); // retries b
    expect(control.store.size).toBe(0);
  });

  it('a member that expired is reported as not-owned; the others are released', async () => {
    const all = locks.lockAll(['a', 'b']);
    await all.acquire();
    control.store.delete('a');
    const error = (await rejectionOf(all.release())) as MultiLockError;
    expect(error.failed[0]?.name).toBe('a');
    expect((error.failed[0]?.error as LockNotHeldError).reason).toBe('not-owned');
    expect(control.store.size).toBe(0);
  });

  it('after its manager’s close() released the members, release() says not-acquired and await using is quiet', async () => {
    const all = locks.lockAll(['a', 'b']);
    await all.acquire();
    const report = await locks.close();
    expect(report.released.sort()).toEqual(['a', 'b']);
    expect(all.isAcquired).toBe(false);
    const error = await rejectionOf(all.release());
    expect((error as LockNotHeldError).reason).toBe('not-acquired');
    const again = new LockManager({ backend: 'unitMulti' });
    {
      await using held = again.lockAll(['c']);
      await held.acquire();
      await again.close();
    }
    expect(control.store.size).toBe(0);
  });

  it('extend() extends every member; one found taken aborts the signal with its LockLostError', async () => {
    const all = locks.lockAll(['a', 'b'], { expire: 10_000 });
    await all.acquire();
    await all.extend(20_000);
    expect(control.callsOf('extend').map((call) => [call.key, call.ttl])).toEqual([
      ['a', 20_000],
      ['b', 20_000],
    ]);
    control.store.delete('b');
    const error = (await rejectionOf(all.extend())) as MultiLockError;
    expect(error).toBeInstanceOf(MultiLockError);
    expect(error.operation).toBe('extend');
    expect(error.failed.map((f) => f.name)).toEqual(['b']);
    expect(error.succeeded).toEqual(['a']);
    expect(all.signal.aborted).toBe(true);
    expect(all.signal.reason).toBeInstanceOf(LockLostError);
    expect((all.signal.reason as LockLostError).lockName).toBe('b');
  });

  it('extend() checks its argument once, before any member', async () => {
    const all = locks.lockAll(['a', 'b']);
    await expect(all.extend()).rejects.toBeInstanceOf(LockNotHeldError);
    await all.acquire();
    await expect(all.extend(-1)).rejects.toBeInstanceOf(RangeError);
    expect(control.calls.extend).toBe(0);
  });

  it('the signal aborts when any member is lost (no renewal, expiry near)', async () => {
    const all = locks.lockAll(['a', 'b'], { expire: 1_000 });
    await all.acquire();
    const signal = all.signal;
    await advance(899);
    expect(signal.aborted).toBe(false);
    await advance(1);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBeInstanceOf(LockLostError);
  });

  it('autoExtend renews every member', async () => {
    const all = locks.lockAll(['a', 'b'], { expire: 900, autoExtend: 300 });
    await all.acquire();
    await advance(2_000);
    expect(all.signal.aborted).toBe(false);
    expect(control.calls.extend).toBeGreaterThanOrEqual(12);
    await all.release();
  });

  it('using() acquires, runs and releases, also when fn throws (fn’s error wins)', async () => {
    const all = locks.lockAll(['a', 'b']);
    const seen = await all.using((held) => [...held.fencingTokens.keys()]);
    expect(seen).toEqual(['a', 'b']);
    expect(control.store.size).toBe(0);
    const failure = new Error('boom');
    await expect(
      all.using(() => {
        throw failure;
      }),
    ).rejects.toBe(failure);
    expect(control.store.size).toBe(0);
  });

  it('await using releases the set', async () => {
    {
      await using all = locks.lockAll(['a', 'b']);
      await all.acquire();
      expect(control.store.size).toBe(2);
    }
    expect(control.store.size).toBe(0);
  });

  it('refuses a second acquire while one is in progress, and an acquire while it holds', async () => {
    control.holdElsewhere('b', 500);
    const all = locks.lockAll(['a', 'b']);
    const first = watch(all.acquire());
    await expect(all.acquire()).rejects.toThrow(messages.acquireInProgress('a, b'));
    await advance(600);
    expect(first.value).toBe(true);
    const again = await rejectionOf(all.acquire(false));
    expect(again).toBeInstanceOf(LockError);
    expect((again as Error).message).toBe(messages.multiAlreadyHeld('a, b', 'a'));
  });
});

describe('validation', () => {
  it('refuses an empty list, a non-array, a non-string name and too many names, naming the option', () => {
    const empty = thrown(() => locks.lockAll([]));
    expect(empty).toBeInstanceOf(RangeError);
    expect(empty.message).toBe(
      "Invalid option 'names': got an array of 0, expected a non-empty array of at most 100 lock names (strings)",
    );
    const single = thrown(() => locks.lockAll('ab' as unknown as string[]));
    expect(single).toBeInstanceOf(TypeError);
    expect(single.message).toMatch(/^Invalid option 'names': got "ab" \(a string\), expected/);
    const number = thrown(() => locks.lockAll(['a', 7 as unknown as string]));
    expect(number).toBeInstanceOf(TypeError);
    expect(number.message).toBe(
      "Invalid option 'names[1]': got 7, expected a lock name (a non-empty string)",
    );
    const many = thrown(() => locks.lockAll(Array.from({ length: 101 }, (_, i) => `n${i}`)));
    expect(many).toBeInstanceOf(RangeError);
    expect(many.message).toMatch(/got an array of 101/);
    expect(() => locks.lockAll(Array.from({ length: 100 }, (_, i) => `n${i}`))).not.toThrow();
  });

  it('refuses a bad name as a single lock would, and unknown or bad options', () => {
    expect(thrown(() => locks.lockAll(['a', '']))).toBeInstanceOf(RangeError);
    const unknown = thrown(() => locks.lockAll(['a'], { expires: 5 } as never));
    expect(unknown.message).toMatch(/Unknown option 'expires' for lockAll\(\) options/);
    expect(thrown(() => locks.lockAll(['a'], { timeout: -1 })).message).toMatch(
      /Invalid option 'timeout': got -1/,
    );
  });

  it('refuses bad acquire() options', async () => {
    await expect(locks.lockAll(['a']).acquire({ timeout: Number.NaN })).rejects.toBeInstanceOf(
      RangeError,
    );
    expect(control.calls.acquire).toBe(0);
  });

  it('a closed manager makes no multi-lock', async () => {
    await locks.close();
    expect(thrown(() => locks.lockAll(['a']))).toBeInstanceOf(LockError);
  });
});

describe('new MultiLock() on the default manager', () => {
  it('needs configure() first', () => {
    const error = thrown(() => new MultiLock(['a', 'b']));
    expect(error).toBeInstanceOf(LockError);
    expect(error.message).toBe(messages.noBackend('a, b'));
  });

  it('uses the configured backend and defaults', async () => {
    configure({ backend: 'unitMulti', namespace: 'cfg', timeout: 1_234 });
    const all = new MultiLock(['b', 'a']);
    expect(all.locks.map((lock) => lock.key)).toEqual(['cfg_a', 'cfg_b']);
    expect(all.timeout).toBe(1_234);
    await all.acquire();
    expect([...control.store.keys()].sort()).toEqual(['cfg_a', 'cfg_b']);
    await all.release();
    expect(thrown(() => new MultiLock(['a'], { client: {} } as never))).toBeInstanceOf(TypeError);
  });
});
