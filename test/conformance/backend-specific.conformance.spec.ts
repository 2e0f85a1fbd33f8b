/**
 * Conformance beyond the published contract kit: what only our backends or our registry can be
 * asked (the kit runs the rest on every backend, see test/support/contract.ts). Memcached's key
 * limits; why each backend without semaphore primitives refuses one; clients of a real other
 * library refused by name; the registry itself.
 */
import { Redis } from 'ioredis';
import memjs from 'memjs';
import {
  backends,
  configure,
  getConfiguration,
  Lock,
  LockError,
  LockManager,
  resetConfiguration,
  UnsupportedFeatureError,
} from 'nestjs-sherlock';
import { afterEach, describe, expect, it } from 'vitest';

import { type BackendFixture, fixture, fixtures, uniqueName } from '../support/backends.js';
import { throwsWith } from '../support/helpers.js';
import { scope } from '../support/locks.js';

/**
 * A real client of another backend's library, which never connects: a memjs client for the redis
 * backend, a lazy ioredis client for every other one.
 */
function foreignClient(of: BackendFixture): { client: object; close(): void } {
  if (of.name === 'redis') {
    const client = memjs.Client.create('127.0.0.1:1', { logger: { log: () => undefined } });
    return { client, close: () => client.close() };
  }
  const client = new Redis({ host: '127.0.0.1', port: 1, lazyConnect: true });
  return { client, close: () => client.disconnect() };
}

describe('memcached key limits', () => {
  const memcached = fixture('memcached');
  const refused = [
    { label: 'a name with a space', name: 'bad name', problem: 'whitespace' },
    { label: 'a namespace with a space', name: 'name', namespace: 'bad ns', problem: 'whitespace' },
    { label: 'a 251-byte name', name: 'x'.repeat(251), problem: '250' },
    { label: 'a 126-character name of 252 bytes', name: 'é'.repeat(126), problem: '250' },
    {
      label: 'a namespace pushing the key to 251 bytes',
      name: 'x'.repeat(50),
      namespace: 'n'.repeat(200),
      problem: '250',
    },
  ];

  it.each(refused)('refuses $label with a RangeError naming memcached', (bad) => {
    const client = memjs.Client.create('127.0.0.1:1', { logger: { log: () => undefined } });
    const error = throwsWith(
      RangeError,
      () => new memcached.LockClass(bad.name, { client, namespace: bad.namespace ?? null }),
    );
    client.close();
    expect(error.message).toContain('for the memcached backend');
    expect(error.message).toContain(bad.problem);
  });

  it('accepts a key of exactly 250 bytes and locks it on the server', async ({
    onTestFinished,
  }) => {
    const made = scope(onTestFinished);
    const name = `${uniqueName()}-`.padEnd(250, 'x');
    const lock = made.lock(memcached, name);
    expect(Buffer.byteLength(lock.key)).toBe(250);
    expect(await lock.acquire(false)).toBe(true);
    expect(await made.lock(memcached, name).locked()).toBe(true);
    await lock.release();
  });
});

describe('why a backend without semaphore primitives refuses one', () => {
  it.each([
    { name: 'memcached', reason: /no atomic operation/ },
    { name: 'redlock', reason: /majority/ },
    { name: 'etcdhttp', reason: /implements no semaphore primitives/ },
    { name: 'etcdgateway', reason: /implements no semaphore primitives/ },
  ] as const)('$name: $reason', async ({ name, reason }) => {
    const found = fixture(name);
    const client = found.createClient();
    try {
      const manager = new LockManager({ backend: found.definition, client });
      const error = throwsWith(UnsupportedFeatureError, () => manager.semaphore('x', 2));
      expect(error.reason).toMatch(reason);
      await manager.close();
    } finally {
      await found.closeClient(client);
    }
  });
});

describe('why a backend without read-write or election primitives refuses one', () => {
  it.each([
    { name: 'memcached', feature: 'readWrite', reason: /no atomic operation/ },
    { name: 'redlock', feature: 'readWrite', reason: /quorum/ },
    { name: 'postgres', feature: 'readWrite', reason: /one row per lock.*a row per reader/ },
    { name: 'etcdhttp', feature: 'readWrite', reason: /implements no read-write lock primitives/ },
    { name: 'threads', feature: 'readWrite', reason: /implements no read-write lock primitives/ },
    { name: 'cluster', feature: 'readWrite', reason: /implements no read-write lock primitives/ },
    { name: 'memcached', feature: 'election', reason: /best effort/ },
    { name: 'redlock', feature: 'election', reason: /quorum/ },
    { name: 'postgres', feature: 'election', reason: /keeps no published value/ },
  ] as const)('$name, $feature: $reason', async ({ name, feature, reason }) => {
    const found = fixture(name);
    const client = found.createClient();
    try {
      const manager = new LockManager({ backend: found.definition, client });
      const error = throwsWith(UnsupportedFeatureError, () =>
        feature === 'readWrite' ? manager.readWrite('x') : manager.election('x'),
      );
      expect(error.feature).toBe(feature);
      expect(error.reason).toMatch(reason);
      await manager.close();
    } finally {
      await found.closeClient(client);
    }
  });
});

describe.each(fixtures)('$name backend: a client of another real library', (each) => {
  afterEach(() => resetConfiguration());
  const { definition, LockClass } = each;

  it(`is refused by the lock class and by configure() with a TypeError naming ${definition.library}`, () => {
    const foreign = foreignClient(each);
    try {
      const error = throwsWith(TypeError, () => new LockClass('x', { client: foreign.client }));
      expect(error.message).toContain(`the ${definition.library} library`);
      expect(error.message).toContain(foreign.client.constructor.name);
      const before = getConfiguration();
      throwsWith(TypeError, () => configure({ backend: each.name, client: foreign.client }));
      expect(getConfiguration()).toEqual(before);
    } finally {
      foreign.close();
    }
  });
});

describe('backend registry and the generic Lock without a backend', () => {
  afterEach(() => resetConfiguration());

  it('new Lock() without a configured backend throws a LockError that mentions configure()', () => {
    const error = throwsWith(LockError, () => new Lock('x'));
    expect(error.message).toContain('configure(');
    expect(error.lockName).toBe('x');
  });

  it('configure({ client: {} }) throws a TypeError: not a client of any known backend', () => {
    configure({ namespace: 'before' });
    const before = getConfiguration();
    const error = throwsWith(TypeError, () => configure({ client: {} }));
    expect(error.message).toContain('not a client of any known backend');
    expect(getConfiguration()).toEqual(before);
  });

  it("backends.get('nope') throws a RangeError listing the known backends", () => {
    const error = throwsWith(RangeError, () => backends.get('nope'));
    for (const { name } of fixtures) expect(error.message).toContain(`'${name}'`);
  });

  it('backends.MEMCACHE is backends.MEMCACHED, and lookups by name ignore case', () => {
    expect(backends.MEMCACHE).toBe(backends.MEMCACHED);
    expect(backends.get('memcache')).toBe(backends.MEMCACHED);
    expect(backends.get('REDIS')).toBe(backends.REDIS);
    for (const each of fixtures) expect(backends.get(each.name)).toBe(each.definition);
  });
});
