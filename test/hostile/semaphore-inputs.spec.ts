/**
 * Hostile input to semaphores, on every backend that offers them: odd names (unicode, paths,
 * braces and hash tags, Lua quotes, a name that looks like the library's own keys) work and stay
 * apart from each other and from a lock of the same name; bad names and limits are typed errors;
 * misuse (release twice, release by another object, two acquires on one object) is refused
 * without disturbing the holders.
 */
import { LockError, LockManager, LockNotHeldError } from 'nestjs-sherlock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { fixtures, uniqueName } from '../support/backends.js';
import { rejectsWith, throwsWith } from '../support/helpers.js';

const ODD_NAMES: [string, string][] = [
  ['unicode', '锁-🔒-é'],
  ['a slash', 'a/b'],
  ['dot-dot-slash', '../other'],
  ['a star', '*'],
  ['braces', '{}'],
  ['a hash tag', '{tag}x'],
  ['quotes and Lua', "'; redis.call('flushall') --"],
  ['like a key of the library', 'sem:{0}:x'],
];

const BAD_NAMES: [string, unknown, typeof TypeError | typeof RangeError][] = [
  ['empty', '', RangeError],
  ["U+001E (the separator of a semaphore's etcd entries)", 'a\u001eb', RangeError],
  ['U+001F', 'a\u001fb', RangeError],
  ['a number', 42, TypeError],
];

describe.each(fixtures.filter((f) => f.capabilities.semaphore))(
  'hostile input to semaphores: $name',
  (fixture) => {
    let client: object;
    let manager: LockManager;
    beforeAll(() => {
      client = fixture.createClient();
      manager = new LockManager({ backend: fixture.definition, client });
    });
    afterAll(async () => {
      await manager.close();
      await fixture.closeClient(client);
    });

    it.for(ODD_NAMES)(
      'name %s: limit respected, apart from a lock and a sibling name',
      async ([, odd]) => {
        const name = `${odd}-${uniqueName('odd')}`;
        const lock = manager.lock(name);
        expect(await lock.acquire(false)).toBe(true);
        const [a, b, c] = [1, 2, 3].map(() => manager.semaphore(name, 2));
        if (!a || !b || !c) throw new Error('three semaphores');
        expect(await a.acquire(false)).toBe(true);
        expect(await b.acquire(false)).toBe(true);
        expect(await c.acquire(false)).toBe(false);
        expect(await manager.semaphore(`${name}x`, 1).count()).toBe(0);
        expect(await manager.semaphore(name, 2, { namespace: 'other' }).count()).toBe(0);
        expect(await a.count()).toBe(2);
        await a.release();
        await b.release();
        expect(await c.count()).toBe(0);
        expect(await lock.locked()).toBe(true);
        await lock.release();
      },
    );

    it.for(BAD_NAMES)('name %s: a typed error at construction', ([, bad, type]) => {
      throwsWith(type, () => manager.semaphore(bad as string, 2));
    });

    it('misuse: release twice, release and extend by another object, two acquires on one object', async () => {
      const name = uniqueName('misuse');
      const holder = manager.semaphore(name, 1);
      const other = manager.semaphore(name, 1);
      expect(await holder.acquire(false)).toBe(true);
      await rejectsWith(LockNotHeldError, () => other.release());
      await rejectsWith(LockNotHeldError, () => other.extend(5_000));
      expect(await holder.count()).toBe(1);
      const twice = manager.semaphore(name, 2);
      const first = twice.acquire({ timeout: 5_000 });
      await rejectsWith(LockError, () => twice.acquire(false));
      expect(await first).toBe(true);
      // (count() of a limit-1 semaphore says at most 1 on etcd: the entries first in line.)
      expect(await twice.count()).toBe(2);
      await holder.release();
      await rejectsWith(LockNotHeldError, () => holder.release());
      expect(await twice.count()).toBe(1);
      await twice.release();
    });
  },
);
