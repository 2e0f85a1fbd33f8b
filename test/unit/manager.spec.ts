/**
 * LockManager: defaults and per-lock overrides, validation (TypeError / RangeError naming the
 * option and the value), the locks it holds, close() (releases, reports failures, closes only a
 * client it made, refuses new locks), independence from configure(); LockNotHeldError; and the
 * registry's checks of a declared backend.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LockBackend } from '../../lib/core/backend.js';
import { configure, getConfiguration, resetConfiguration } from '../../lib/core/configuration.js';
import {
  LockBackendError,
  LockError,
  LockNotHeldError,
  LockReleaseError,
} from '../../lib/core/errors/index.js';
import { LockManager } from '../../lib/core/manager.js';
import { messages } from '../../lib/core/messages.js';
import { DEFAULT_LOCK_OPTIONS } from '../../lib/core/options.js';
import { backends } from '../../lib/core/registry.js';
import { FakeClient, registerFake } from './fake-backend.js';
import { advance, rejectionOf, useFakeClock } from './helpers.js';

const fake = registerFake({ name: 'unitManager' });
const seconds = registerFake({
  name: 'unitManagerSeconds',
  expiry: { granularity: 1_000, minimum: 1_000, maximum: 86_400_000, earlyBy: 0 },
});
const control = fake.control;

useFakeClock();

beforeEach(() => {
  control.reset();
  seconds.control.reset();
});

afterEach(() => {
  resetConfiguration();
});

/** The error `run` throws synchronously (fails if it does not throw). */
function thrown(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    return error as Error;
  }
  return expect.unreachable('expected a throw');
}

const DURATION = (min: number) => `a finite number of milliseconds >= ${min}`;
const EXPIRE = 'a finite number of milliseconds >= 1, or null for a lock that never expires';
const NAMESPACE = 'a non-empty string without control characters, or null for no namespace';

describe('defaults', () => {
  it('are sherlock’s when none are given', () => {
    const locks = new LockManager({ backend: 'unitManager' });
    expect(locks.defaults).toEqual(DEFAULT_LOCK_OPTIONS);
    expect(Object.isFrozen(locks.defaults)).toBe(true);
    const lock = locks.lock('a');
    expect(lock.expire).toBe(60_000);
    expect(lock.timeout).toBe(10_000);
    expect(lock.retryInterval).toBe(100);
    expect(lock.operationTimeout).toBe(5_000);
    expect(lock.namespace).toBeNull();
    expect(lock.renewEvery).toBeNull();
    expect(lock.key).toBe('a');
    expect(lock.manager).toBe(locks);
    expect(lock.backend).toBe(fake.definition);
  });

  it('apply to every lock of the manager', () => {
    const locks = new LockManager({
      backend: 'unitManager',
      namespace: 'ns',
      expire: 9_000,
      timeout: 200,
      retryInterval: 20,
      operationTimeout: 300,
      autoExtend: true,
    });
    expect(locks.defaults).toEqual({
      namespace: 'ns',
      expire: 9_000,
      timeout: 200,
      retryInterval: 20,
      operationTimeout: 300,
      autoExtend: true,
    });
    const lock = locks.lock('a');
    expect(lock.key).toBe('ns_a');
    expect(lock.expire).toBe(9_000);
    expect(lock.timeout).toBe(200);
    expect(lock.retryInterval).toBe(20);
    expect(lock.operationTimeout).toBe(300);
    expect(lock.renewEvery).toBe(3_000);
  });

  it('are overridden by the options of a lock, one by one', () => {
    const locks = new LockManager({ backend: 'unitManager', namespace: 'ns', expire: 9_000 });
    const lock = locks.lock('a', { namespace: null, timeout: 50, autoExtend: 1_000 });
    expect(lock.key).toBe('a');
    expect(lock.timeout).toBe(50);
    expect(lock.renewEvery).toBe(1_000);
    expect(lock.expire).toBe(9_000); // not overridden
    expect(locks.lock('b', { expire: null }).expire).toBeNull();
    expect(locks.lock('c').key).toBe('ns_c'); // the defaults are unchanged
  });

  it('uses the backend given by name (any case) or by definition', () => {
    expect(new LockManager({ backend: 'UNITMANAGER' as never }).backend).toBe(fake.definition);
    expect(new LockManager({ backend: fake.definition }).backend).toBe(fake.definition);
    expect(backends.get('unitmanager')).toBe(fake.definition);
    expect((backends as unknown as Record<string, unknown>)['UNITMANAGER']).toBe(fake.definition);
  });
});

describe('validation', () => {
  const manager = (options: object) => () =>
    new LockManager({ backend: 'unitManager', ...options });

  it.each([
    ['timeout', -1, RangeError, DURATION(0)],
    ['timeout', '5', TypeError, DURATION(0)],
    ['retryInterval', Number.NaN, RangeError, DURATION(0)],
    ['operationTimeout', 0, RangeError, DURATION(1)],
    ['expire', 0, RangeError, EXPIRE],
    ['expire', Infinity, RangeError, EXPIRE],
    ['namespace', '', RangeError, NAMESPACE],
    ['namespace', 42, TypeError, NAMESPACE],
    ['autoExtend', 0, RangeError, DURATION(1)],
    ['autoExtend', 'yes', TypeError, DURATION(1)],
  ] as const)(
    'of the manager: %s = %o is a %o naming option and value',
    (option, value, type, allowed) => {
      const error = thrown(manager({ [option]: value }));
      expect(error).toBeInstanceOf(type);
      expect(error.message).toMatch(new RegExp(`^Invalid option '${option}': got `));
      expect(error.message).toBe(messages.invalidOption(option, value, allowed));
      expect(control.calls.connect).toBe(0); // nothing made
    },
  );

  it.each([
    ['timeout', Infinity, RangeError, DURATION(0)],
    ['retryInterval', -5, RangeError, DURATION(0)],
    ['operationTimeout', null, TypeError, DURATION(1)],
    ['expire', '60s', TypeError, EXPIRE],
  ] as const)(
    'of a lock: %s = %o is a %o naming option and value',
    (option, value, type, allowed) => {
      const locks = new LockManager({ backend: 'unitManager' });
      const error = thrown(() => locks.lock('a', { [option]: value }));
      expect(error).toBeInstanceOf(type);
      expect(error.message).toBe(messages.invalidOption(option, value, allowed));
    },
  );

  it('refuses unknown options, naming them', () => {
    expect(thrown(manager({ expires: 1 })).message).toBe(
      messages.unknownOption('expires', 'LockManager options', [
        'backend',
        'client',
        'connection',
        'appName',
        'namespace',
        'expire',
        'timeout',
        'retryInterval',
        'operationTimeout',
        'autoExtend',
      ]),
    );
    const locks = new LockManager({ backend: 'unitManager' });
    const error = thrown(() => locks.lock('a', { client: {} } as object));
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toMatch(
      /^Unknown option 'client' for lock options; allowed options are:/,
    );
  });

  it('refuses settings that cannot work together, naming them', () => {
    const noExpiry = thrown(manager({ expire: null, autoExtend: true }));
    expect(noExpiry).toBeInstanceOf(RangeError);
    expect(noExpiry.message).toMatch(
      /^Invalid option 'autoExtend': got true, expected false when expire is null/,
    );
    const locks = new LockManager({ backend: 'unitManager', autoExtend: true });
    expect(() => locks.lock('a', { expire: null })).toThrow(RangeError);
    expect(() => locks.lock('a', { autoExtend: 40_000 })).toThrow(
      /Invalid option 'autoExtend': got 40000/,
    );
  });

  it('checks expire against the backend’s limits', () => {
    const short = thrown(() => new LockManager({ backend: 'unitManagerSeconds', expire: 500 }));
    expect(short).toBeInstanceOf(RangeError);
    expect(short.message).toBe(
      messages.expireTooShort('expire', 'unitManagerSeconds', 500, 1_000, true, ''),
    );
    const long = thrown(() =>
      new LockManager({ backend: 'unitManagerSeconds' }).lock('a', { expire: 86_400_001 }),
    );
    expect(long).toBeInstanceOf(RangeError);
    expect(long.message).toBe(
      messages.expireTooLong('expire', 'unitManagerSeconds', 86_400_001, 86_400_000, ''),
    );
  });

  it('checks the lock name', () => {
    const locks = new LockManager({ backend: 'unitManager' });
    const empty = thrown(() => locks.lock(''));
    expect(empty).toBeInstanceOf(RangeError);
    expect(empty.message).toBe(
      messages.invalidName('unitManager', '', 'expected a non-empty string'),
    );
    const number = thrown(() => locks.lock(42 as unknown as string));
    expect(number).toBeInstanceOf(TypeError);
    expect(number.message).toBe(messages.invalidName('unitManager', 42, 'expected a string'));
    expect(() => locks.lock('a\nb')).toThrow(RangeError);
  });

  it('refuses an unknown backend, a client and a connection together, a foreign client', () => {
    const unknown = thrown(() => new LockManager({ backend: 'nope' as never }));
    expect(unknown).toBeInstanceOf(RangeError);
    expect(unknown.message).toMatch(
      /^Invalid option 'backend': got "nope" \(a string\), expected one of: /,
    );
    expect(unknown.message).toContain("'unitManager'");
    const both = thrown(
      () => new LockManager({ backend: 'unitManager', client: new FakeClient(), connection: 'x' }),
    );
    expect(both).toBeInstanceOf(TypeError);
    expect(both.message).toBe(messages.clientAndConnection('manager'));
    const foreign = thrown(() => new LockManager({ backend: 'unitManager', client: new Date() }));
    expect(foreign).toBeInstanceOf(TypeError);
    expect(foreign.message).toBe(
      messages.wrongClient('unitManager', 'unitManager-client', 'FakeClient', new Date()),
    );
    const none = thrown(() => new LockManager({}));
    expect(none).toBeInstanceOf(TypeError);
    expect(none.message).toMatch(/^Invalid option 'backend': got undefined/);
  });
});

describe('clients', () => {
  it('makes its own client once, from the connection settings, and closes it on close()', async () => {
    const locks = new LockManager({ backend: 'unitManager', connection: 'fake://here' });
    expect(control.calls.connect).toBe(1);
    const [made] = control.clients;
    expect(locks.client).toBe(made);
    expect(locks.lock('a').client).toBe(made);
    expect(locks.lock('b').client).toBe(made);
    expect(control.calls.connect).toBe(1);
    await locks.close();
    expect(control.calls.closeClient).toBe(1);
    expect(made?.closed).toBe(true);
  });

  it('leaves a client it was given open', async () => {
    const mine = new FakeClient();
    const locks = new LockManager({ backend: 'unitManager', client: mine });
    expect(control.calls.connect).toBe(0);
    expect(locks.lock('a').client).toBe(mine);
    await locks.close();
    expect(control.calls.closeClient).toBe(0);
    expect(mine.closed).toBe(false);
  });
});

describe('held()', () => {
  it('lists the locks held right now, in the order they were taken', async () => {
    const locks = new LockManager({ backend: 'unitManager' });
    const a = locks.lock('a');
    const b = locks.lock('b');
    expect(locks.held()).toEqual([]);
    await b.acquire();
    await a.acquire();
    expect(locks.held()).toEqual([b, a]);
    await b.release();
    expect(locks.held()).toEqual([a]);
    control.holdElsewhere('c');
    expect(await locks.lock('c').acquire(false)).toBe(false);
    expect(locks.held()).toEqual([a]);
    const other = new LockManager({ backend: 'unitManager' });
    await other.lock('d').acquire();
    expect(locks.held()).toEqual([a]); // another manager's locks are its own
  });

  it('keeps a lock whose release failed (it may be retried)', async () => {
    const locks = new LockManager({ backend: 'unitManager' });
    const a = locks.lock('a');
    await a.acquire();
    control.failNext('release');
    const error = await rejectionOf(a.release());
    expect(error).toBeInstanceOf(LockBackendError);
    expect((error as LockBackendError).operation).toBe('release');
    expect(locks.held()).toEqual([a]);
    expect(a.isAcquired).toBe(true);
    await a.release();
    expect(locks.held()).toEqual([]);
  });
});

describe('close()', () => {
  it('releases the locks still held and says which', async () => {
    const locks = new LockManager({ backend: 'unitManager' });
    const a = locks.lock('a');
    const b = locks.lock('b');
    await a.acquire();
    await b.acquire();
    await locks.lock('c').acquire();
    await locks.held()[2]?.release();
    const report = await locks.close();
    expect(report).toEqual({ released: ['a', 'b'], failed: [] });
    expect(control.callsOf('release').map((c) => c.key)).toEqual(['c', 'a', 'b']);
    expect(control.holder('a')).toBeUndefined();
    expect(control.holder('b')).toBeUndefined();
    expect(a.isAcquired).toBe(false);
    expect(locks.held()).toEqual([]);
    expect(locks.isClosed).toBe(true);
  });

  it('reports the locks it could not release', async () => {
    const locks = new LockManager({ backend: 'unitManager' });
    await locks.lock('a').acquire();
    await locks.lock('b').acquire();
    const failure = new Error('server gone');
    control.failNext('release', 1, { key: 'b', error: failure });
    const report = await locks.close();
    expect(report.released).toEqual(['a']);
    expect(report.failed).toHaveLength(1);
    expect(report.failed[0]?.name).toBe('b');
    expect(report.failed[0]?.error).toBeInstanceOf(LockBackendError);
    expect((report.failed[0]?.error as LockBackendError).cause).toBe(failure);
    expect(locks.held()).toEqual([]);
    expect(control.calls.closeClient).toBe(1); // the client is closed all the same
  });

  it('reports a lock lost meanwhile as failed (not-owned)', async () => {
    const locks = new LockManager({ backend: 'unitManager' });
    await locks.lock('a').acquire();
    control.holdElsewhere('a');
    const report = await locks.close();
    expect(report.released).toEqual([]);
    expect(report.failed.map((f) => (f.error as LockNotHeldError).reason)).toEqual(['not-owned']);
  });

  // Regression: close() dropped a lock it could not release from held() but went on renewing it
  // (autoExtend) and kept its loss timer, although such locks are left to expire.
  it('stops renewing a lock it could not release: it is left to expire', async () => {
    const locks = new LockManager({ backend: 'unitManager', client: new FakeClient() });
    const lock = locks.lock('renewed', { expire: 9_000, autoExtend: true });
    await lock.acquire();
    control.failNext('release', 1);
    const report = await locks.close();
    expect(report.failed.map((f) => f.name)).toEqual(['renewed']);
    await advance(60_000);
    expect(control.calls.extend).toBe(0);
    expect(lock.isAcquired).toBe(false);
  });

  it('refuses new locks afterwards, and its locks lose their client', async () => {
    const locks = new LockManager({ backend: 'unitManager' });
    const old = locks.lock('old');
    await locks.close();
    const error = thrown(() => locks.lock('new'));
    expect(error.constructor).toBe(LockError);
    expect(error.message).toBe(messages.managerClosed('unitManager'));
    expect((error as LockError).lockName).toBe('new');
    expect(() => locks.client).toThrow(LockError);
    expect(() => old.client).toThrow(messages.managerClosed('unitManager'));
    expect(await locks.close()).toEqual({ released: [], failed: [] }); // twice is fine
  });

  it('works with await using', async () => {
    let lock;
    {
      await using locks = new LockManager({ backend: 'unitManager' });
      lock = locks.lock('a');
      await lock.acquire();
    }
    expect(lock.isAcquired).toBe(false);
    expect(control.calls.release).toBe(1);
    expect(control.calls.closeClient).toBe(1);
  });
});

describe('configure()', () => {
  it('changes nothing of a manager made with new LockManager, before or after', () => {
    const before = new LockManager({ backend: 'unitManager', timeout: 300 });
    configure({
      backend: 'unitManager',
      expire: 1_234,
      timeout: 77,
      namespace: 'cfg',
      retryInterval: 5,
    });
    const after = new LockManager({ backend: 'unitManager' });
    for (const [manager, timeout] of [
      [before, 300],
      [after, 10_000],
    ] as const) {
      const lock = manager.lock('x');
      expect(lock.expire).toBe(60_000);
      expect(lock.timeout).toBe(timeout);
      expect(lock.retryInterval).toBe(100);
      expect(lock.key).toBe('x');
      expect(lock.manager).toBe(manager);
    }
    // while the default manager's locks do take the configuration
    expect(getConfiguration().expire).toBe(1_234);
    const LockClass = fake.definition.lockClass;
    const defaultLock = new LockClass('x') as InstanceType<typeof LockClass> & {
      expire: number;
      key: string;
    };
    expect(defaultLock.expire).toBe(1_234);
    expect(defaultLock.key).toBe('cfg_x');
  });

  it('does not let its client reach a manager, nor a manager’s client reach it', () => {
    const configured = new FakeClient();
    configure({ backend: 'unitManager', client: configured });
    const locks = new LockManager({ backend: 'unitManager' });
    expect(locks.client).not.toBe(configured);
    expect(locks.lock('a').client).toBe(control.clients[0]);
  });
});

describe('LockNotHeldError', () => {
  it('is thrown by release() and extend() of a lock never acquired (not-acquired)', async () => {
    const lock = new LockManager({ backend: 'unitManager' }).lock('idle');
    for (const operation of ['release', 'extend'] as const) {
      const error = await rejectionOf(operation === 'release' ? lock.release() : lock.extend());
      expect(error).toBeInstanceOf(LockNotHeldError);
      const notHeld = error as LockNotHeldError;
      expect(notHeld.operation).toBe(operation);
      expect(notHeld.reason).toBe('not-acquired');
      expect(notHeld.lockName).toBe('idle');
      expect(notHeld.message).toBe(messages.notHeld('idle', operation, 'not-acquired'));
    }
    expect(control.calls.release + control.calls.extend).toBe(0);
  });

  it('says not-owned when the server no longer holds it for this owner', async () => {
    const lock = new LockManager({ backend: 'unitManager' }).lock('gone');
    await lock.acquire();
    control.drop('gone');
    const error = (await rejectionOf(lock.release())) as LockNotHeldError;
    expect(error.reason).toBe('not-owned');
    expect(error.operation).toBe('release');
    expect(lock.isAcquired).toBe(false);
    // then a second release: not-acquired
    expect(((await rejectionOf(lock.release())) as LockNotHeldError).reason).toBe('not-acquired');
  });

  it('is LockReleaseError, its name before 1.0', async () => {
    expect(LockReleaseError).toBe(LockNotHeldError);
    const lock = new LockManager({ backend: 'unitManager' }).lock('idle');
    const error = await rejectionOf(lock.release());
    expect(error).toBeInstanceOf(LockReleaseError);
    expect(error).toBeInstanceOf(LockError);
    expect((error as Error).name).toBe('LockNotHeldError');
  });
});

describe('backends.register() of a declared backend', () => {
  const base = (): LockBackend => ({
    name: 'unitManagerDecl',
    library: 'decl-client',
    capabilities: {
      fencing: false,
      extend: false,
      handOff: 'poll',
      crossProcess: false,
      expiry: { granularity: 1, minimum: 1, maximum: null, earlyBy: 0 },
    },
    clientClass: () => FakeClient,
    connect: () => new FakeClient(),
    acquire: async () => true,
    release: async () => true,
    locked: async () => false,
  });

  it('checks that the capabilities match what is implemented', () => {
    const extend = thrown(() =>
      backends.register({ ...base(), capabilities: { ...base().capabilities, extend: true } }),
    );
    expect(extend).toBeInstanceOf(TypeError);
    expect(extend.message).toMatch(
      /^Invalid option 'capabilities.extend': got true, expected false/,
    );
    const push = thrown(() =>
      backends.register({ ...base(), capabilities: { ...base().capabilities, handOff: 'push' } }),
    );
    expect(push.message).toMatch(/^Invalid option 'capabilities.handOff': got "push"/);
    const expiry = thrown(() =>
      backends.register({
        ...base(),
        capabilities: {
          ...base().capabilities,
          expiry: { granularity: 0, minimum: 1, maximum: null, earlyBy: 0 },
        },
      }),
    );
    expect(expiry.message).toMatch(/^Invalid option 'capabilities.expiry'/);
    const name = thrown(() => backends.register({ ...base(), name: '1bad-name' }));
    expect(name.message).toMatch(/^Invalid option 'name': got "1bad-name"/);
    expect(backends.names()).not.toContain('unitManagerDecl');
  });

  it('registers a valid one under its name, with a lock class named after it', async () => {
    const definition = backends.register(base());
    expect(definition.name).toBe('unitManagerDecl');
    expect(definition.lockClass.name).toBe('UnitManagerDeclLock');
    expect(backends.get('unitmanagerdecl')).toBe(definition);
    const lock = new LockManager({ backend: definition }).lock('a');
    expect(await lock.acquire(false)).toBe(true);
    expect(await lock.locked()).toBe(false);
  });
});
