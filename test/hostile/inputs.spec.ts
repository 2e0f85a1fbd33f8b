/**
 * Hostile input, table-driven, on every backend: bad names, bad options, wrong clients, misuse.
 * Each row gets a typed error naming the option, the value and what is allowed, or a documented,
 * sane result; and no row disturbs another lock (a sentinel lock held by another object, checked
 * after every row).
 */
import { Redis } from 'ioredis';
import { type BaseLock, LockError, LockReleaseError, MemoryStore, shutdown } from 'nestjs-sherlock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type BackendFixture, fixtures, uniqueName } from '../support/backends.js';
import { redisUrl } from '../support/env.js';

/** Names every backend refuses at construction: [label, name, error class, message pattern]. */
const BAD_NAMES: [string, unknown, typeof TypeError | typeof RangeError, RegExp][] = [
  ['empty', '', RangeError, /non-empty/],
  ['a newline', 'a\nb', RangeError, /control characters/],
  ['NUL', 'a\u0000b', RangeError, /control characters/],
  [
    "U+001F (the separator of the library's own keys)",
    'a\u001fb',
    RangeError,
    /control characters/,
  ],
  ['a lone surrogate', 'a\ud800b', RangeError, /lone surrogates/],
  ['10 KB', 'x'.repeat(10_240), RangeError, /bytes long/],
  ['a number', 42, TypeError, /expected a string/],
  ['null', null, TypeError, /expected a string/],
];

/** Names every backend accepts (memcached: no whitespace, checked apart); each must round-trip. */
const ODD_NAMES: [string, string][] = [
  ['unicode', '锁-🔒-é'],
  ['a slash', 'a/b'],
  ['dot-dot', '..'],
  ['dot-dot-slash', '../other'],
  ['a star', '*'],
  ['braces', '{}'],
  ['a hash tag', '{tag}x'],
  ['quotes and Lua', "'; redis.call('flushall') --"],
  ['an underscore path', 'ns_other'],
];

/** Options every lock refuses: [option, value, error class]. */
const BAD_OPTIONS: [string, unknown, typeof TypeError | typeof RangeError][] = [
  ['expire', -1, RangeError],
  ['expire', 0, RangeError],
  ['expire', Number.NaN, RangeError],
  ['expire', Number.POSITIVE_INFINITY, RangeError],
  ['expire', '100', TypeError],
  ['expire', 1e20, RangeError],
  ['timeout', -1, RangeError],
  ['timeout', Number.NaN, RangeError],
  ['timeout', '10', TypeError],
  ['retryInterval', -5, RangeError],
  ['retryInterval', Number.POSITIVE_INFINITY, RangeError],
  ['operationTimeout', 0, RangeError],
  ['operationTimeout', '1s', TypeError],
  ['namespace', '', RangeError],
  ['namespace', 'a\nb', RangeError],
  ['namespace', 42, TypeError],
  ['autoExtend', 'yes', TypeError],
  ['autoExtend', -1, RangeError],
  ['expires', 1_000, TypeError],
];

describe.each(fixtures)('hostile input: $name', (fixture: BackendFixture) => {
  let client: object;
  let sentinel: BaseLock;
  const made: BaseLock[] = [];
  const lock = (name: string, options: Record<string, unknown> = {}) => {
    const created = new fixture.LockClass(name, { client, ...options });
    made.push(created);
    return created;
  };

  beforeAll(async () => {
    client = fixture.createClient();
    sentinel = new fixture.LockClass(uniqueName('sentinel'), { client, expire: 60_000 });
    expect(await sentinel.acquire(false)).toBe(true);
  });
  afterAll(async () => {
    await Promise.allSettled(made.filter((l) => l.isAcquired).map((l) => l.release()));
    expect(sentinel.isAcquired, 'the sentinel held to the end').toBe(true);
    expect(await sentinel.locked()).toBe(true);
    await sentinel.release();
    await fixture.closeClient(client);
  });

  /** After each row: the sentinel is still held by its owner, and the server agrees. */
  const sentinelIntact = async () => {
    expect(sentinel.isAcquired).toBe(true);
    expect(sentinel.signal.aborted).toBe(false);
    expect(await sentinel.locked()).toBe(true);
  };

  it.for(BAD_NAMES)(
    'name %s: %s at construction, naming the backend and the name',
    async ([, name, type, pattern]) => {
      expect(() => lock(name as string)).toThrow(type);
      expect(() => lock(name as string)).toThrow(pattern);
      expect(() => lock(name as string)).toThrow(new RegExp(`${fixture.name}|name`, 'i'));
      await sentinelIntact();
    },
  );

  it.for(ODD_NAMES)('name %s: works, stays under its namespace, and releases', async ([, odd]) => {
    if (fixture.name === 'memcached' && /\s/.test(odd)) {
      expect(() => lock(odd)).toThrow(RangeError);
      return;
    }
    const name = `${odd}-${uniqueName()}`;
    const held = lock(name, { namespace: 'hostile' });
    const prefix = `hostile${fixture.keySeparator}`;
    expect(held.key.startsWith(prefix), held.key).toBe(true);
    expect(held.name).toBe(name);
    expect(await held.acquire(false)).toBe(true);
    expect(await lock(name, { namespace: 'hostile' }).acquire(false), 'exclusive').toBe(false);
    expect(await lock(name).locked(), 'the same name without namespace is another lock').toBe(
      false,
    );
    await held.release();
    expect(await held.locked()).toBe(false);
    await sentinelIntact();
  });

  it.for(BAD_OPTIONS)(
    'option %s = %s: %s naming the option and the value',
    async ([option, value, type]) => {
      const attempt = () => lock(uniqueName('opt'), { [option]: value });
      expect(attempt).toThrow(type);
      expect(attempt).toThrow(new RegExp(`'${option}'`));
      await sentinelIntact();
    },
  );

  it('a client of another library, {}, a string: a TypeError naming the backend', async () => {
    const other =
      fixture.name === 'redis' || fixture.name === 'redlock'
        ? new MemoryStore()
        : new Redis(redisUrl(), { lazyConnect: true });
    for (const wrong of [other, {}, 'redis://localhost']) {
      expect(
        () => new fixture.LockClass(uniqueName('client'), { client: wrong as object }),
      ).toThrow(TypeError);
    }
    if (other instanceof Redis) other.disconnect();
    await sentinelIntact();
  });

  it('release twice; release and extend by another object on the same name: LockReleaseError, and the owner keeps the lock', async () => {
    const name = uniqueName('misuse');
    const owner = lock(name, { expire: 30_000 });
    const stranger = lock(name, { expire: 30_000 });
    expect(await owner.acquire(false)).toBe(true);
    await expect(stranger.release()).rejects.toBeInstanceOf(LockReleaseError);
    await expect(stranger.extend()).rejects.toBeInstanceOf(LockReleaseError);
    expect(await stranger.locked()).toBe(true);
    expect(owner.isAcquired).toBe(true);
    await owner.release();
    await expect(owner.release()).rejects.toMatchObject({ reason: 'not-acquired' });
    await sentinelIntact();
  });

  it('two concurrent acquires on ONE object: the second is refused with a LockError, the first holds', async () => {
    const name = uniqueName('twice');
    const blocker = lock(name, { expire: 30_000 });
    expect(await blocker.acquire(false)).toBe(true);
    const one = lock(name, { timeout: 3_000, retryInterval: 50 });
    const first = one.acquire();
    await expect(one.acquire(false)).rejects.toBeInstanceOf(LockError);
    await blocker.release();
    expect(await first).toBe(true);
    await one.release();
    await sentinelIntact();
  });

  it('a huge expire (30 days) holds: the loss signal does not fire at once (timers longer than 24.8 days)', async () => {
    const held = lock(uniqueName('huge'), { expire: 30 * 24 * 3600 * 1000, autoExtend: false });
    expect(await held.acquire(false)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(held.signal.aborted).toBe(false);
    await held.release();
    await sentinelIntact();
  });
});

describe('after shutdown()', () => {
  it('an acquire on a lock object is refused or works again (documented): it never breaks other locks', async () => {
    const store = new MemoryStore();
    const { MemoryLock } = await import('nestjs-sherlock');
    const before = new MemoryLock(uniqueName('shutdown'), { client: store });
    expect(await before.acquire(false)).toBe(true);
    await shutdown();
    expect(before.isAcquired, 'shutdown released it').toBe(false);
    const after = new MemoryLock(uniqueName('shutdown'), { client: store });
    expect(await after.acquire(false)).toBe(true);
    await after.release();
  });
});
