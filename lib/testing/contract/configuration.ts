/**
 * The configuration contract: invalid names, options, clients and acquire() arguments refused
 * with typed errors naming what is wrong; the declared expiry limits; configure() and the generic
 * Lock; the backend's lock class without a client; shutdown().
 */
import {
  type AcquireOptions,
  type BackendName,
  type BaseLockOptions,
  configure,
  type ConfigureOptions,
  getConfiguration,
  heldLocks,
  Lock,
  type LockOptions,
  resetConfiguration,
  type SherlockConfiguration,
  shutdown,
} from '../../sherlock.js';
import { expect } from '../expect.js';
import { rejectsWith, throwsWith, uniqueName } from '../helpers.js';
import { type Runner, type SubjectInfo, useBackend } from '../subject.js';

/** How an invalid value shows up in an error message (a string quoted, anything else as is). */
function shown(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

interface BadOption {
  readonly option: string;
  readonly value: unknown;
  readonly type: typeof TypeError | typeof RangeError;
}

/** Invalid values of the lock options, refused by every lock class and by configure(). */
const BAD_OPTIONS: readonly BadOption[] = [
  { option: 'expire', value: 0, type: RangeError },
  { option: 'expire', value: -1, type: RangeError },
  { option: 'expire', value: NaN, type: RangeError },
  { option: 'expire', value: Infinity, type: RangeError },
  { option: 'expire', value: '100', type: TypeError },
  { option: 'timeout', value: -1, type: RangeError },
  { option: 'retryInterval', value: NaN, type: RangeError },
  { option: 'operationTimeout', value: 0, type: RangeError },
  { option: 'namespace', value: '', type: RangeError },
];

/** Asserts a validation error names the option and shows the value it got. */
function expectOptionError(error: Error, { option, value }: BadOption): void {
  expect(error.message).toContain(`'${option}'`);
  expect(error.message).toContain(shown(value));
}

/** A client of no backend's library. */
class ForeignClient {
  readonly connected = false;
}

/** Asserts the configuration is field for field the one captured in `before`. */
function expectConfigurationUnchanged(
  current: SherlockConfiguration,
  before: SherlockConfiguration,
): void {
  for (const key of Object.keys(before) as (keyof SherlockConfiguration)[]) {
    expect(current[key], `configuration.${key}`).toBe(before[key]);
  }
  expect(Object.keys(current).sort()).toEqual(Object.keys(before).sort());
}

/** 31 days: above memcached's limit (it reads longer expirations as dates), fine elsewhere. */
const THIRTY_ONE_DAYS_MS = 31 * 24 * 60 * 60 * 1_000;

interface BadName {
  readonly label: string;
  readonly name: unknown;
  readonly namespace?: string;
  readonly type: typeof TypeError | typeof RangeError;
  readonly problem: string;
}

/** Names no backend accepts. */
const BAD_NAMES: readonly BadName[] = [
  { label: 'an empty name', name: '', type: RangeError, problem: 'non-empty' },
  { label: 'a number as name', name: 42, type: TypeError, problem: 'expected a string' },
  { label: 'a name with a newline', name: 'bad\nname', type: RangeError, problem: 'control' },
  { label: 'a name with a NUL', name: 'bad\u0000name', type: RangeError, problem: 'control' },
  { label: 'a 2000-character name', name: 'x'.repeat(2_000), type: RangeError, problem: 'bytes' },
  {
    label: 'a name whose namespace makes the key 1101 bytes long',
    name: 'x'.repeat(100),
    namespace: 'n'.repeat(1_000),
    type: RangeError,
    problem: 'bytes',
  },
];

/**
 * Names some servers refuse (memcached: whitespace, keys over 250 bytes): a backend either refuses
 * them when the lock is created, naming itself, or locks them on the server.
 */
const SERVER_DEPENDENT_NAMES: readonly BadName[] = [
  { label: 'a name with a space', name: 'bad name', type: RangeError, problem: 'whitespace' },
  {
    label: 'a namespace with a space',
    name: 'name',
    namespace: 'bad ns',
    type: RangeError,
    problem: 'whitespace',
  },
  { label: 'a 251-byte name', name: 'x'.repeat(251), type: RangeError, problem: '250' },
  {
    label: 'a 126-character name of 252 bytes',
    name: 'é'.repeat(126),
    type: RangeError,
    problem: '250',
  },
  {
    label: 'a namespace pushing the key to 251 bytes',
    name: 'x'.repeat(50),
    namespace: 'n'.repeat(200),
    type: RangeError,
    problem: '250',
  },
];

interface BadAcquireArg {
  readonly label: string;
  readonly arg: unknown;
  readonly type: typeof TypeError | typeof RangeError;
  readonly mentions: readonly string[];
}

const BAD_ACQUIRE_ARGS: readonly BadAcquireArg[] = [
  {
    label: '{ timeout: -5 }',
    arg: { timeout: -5 },
    type: RangeError,
    mentions: ["'timeout'", '-5'],
  },
  {
    label: "{ blocking: 'yes' }",
    arg: { blocking: 'yes' },
    type: TypeError,
    mentions: ["'blocking'", '"yes"'],
  },
  { label: '{ signal: {} }', arg: { signal: {} }, type: TypeError, mentions: ["'signal'"] },
  { label: '{ retries: 3 }', arg: { retries: 3 }, type: TypeError, mentions: ["'retries'"] },
  { label: "'yes'", arg: 'yes', type: TypeError, mentions: ['"yes"'] },
];

export function configurationContract(runner: Runner, fixture: SubjectInfo): void {
  // Registered before useBackend(): after-hooks run in reverse order, so locks using the
  // configured client are released before the configuration is reset.
  const { describe, it, afterEach } = runner;
  afterEach(() => resetConfiguration());
  const backend = useBackend(runner, fixture);
  const { definition, LockClass } = fixture;

  /** Creates a lock of this backend with raw (possibly invalid) arguments. */
  const construct = (name: unknown, options: Record<string, unknown> = {}) =>
    new LockClass(name as string, { client: backend.client, ...options } as BaseLockOptions);

  /** Runs `check` while another object holds a fresh name, then asserts it still holds it. */
  async function whileHeld(check: (name: string) => unknown): Promise<void> {
    const name = uniqueName();
    const holder = await backend.hold(name);
    await check(name);
    expect(holder.isAcquired).toBe(true);
    expect(await backend.isLocked(name)).toBe(true);
    await holder.release(); // still its owner
    expect(await backend.isLocked(name)).toBe(false);
  }

  /** Asserts a name is refused as `bad` says, with a message naming the backend. */
  function expectNameRefused(bad: BadName): void {
    const options = bad.namespace === undefined ? {} : { namespace: bad.namespace };
    const error = throwsWith(bad.type, () => construct(bad.name, options));
    expect(error.message).toContain(`for the ${fixture.name} backend`);
    expect(error.message).toContain(bad.problem);
  }

  describe('lock names', () => {
    for (const bad of BAD_NAMES) {
      it(`refuses ${bad.label} with a ${bad.type.name} naming the backend`, () => {
        expectNameRefused(bad);
      });
    }

    for (const bad of SERVER_DEPENDENT_NAMES) {
      it(`${bad.label}: refused at construction with a RangeError naming the backend, or locked on the server`, async () => {
        const options = bad.namespace === undefined ? {} : { namespace: bad.namespace };
        const name = `${bad.name as string}-${uniqueName()}`;
        let lock;
        try {
          lock = backend.lock(name, options);
        } catch (error) {
          expect(error).toBeInstanceOf(RangeError);
          expect((error as Error).message).toContain(`for the ${fixture.name} backend`);
          return;
        }
        expect(await lock.acquire(false)).toBe(true);
        expect(await backend.isLocked(name, options)).toBe(true);
        await lock.release();
        expect(await backend.isLocked(name, options)).toBe(false);
      });
    }
  });

  describe('lock options', () => {
    for (const bad of BAD_OPTIONS) {
      it(`refuses ${bad.option}: ${String(bad.value)} with a ${bad.type.name} naming the option and the value`, async () => {
        await whileHeld((name) => {
          const error = throwsWith(bad.type, () => construct(name, { [bad.option]: bad.value }));
          expectOptionError(error, bad);
        });
      });
    }

    it('refuses the unknown option retry_interval with a TypeError naming it', async () => {
      await whileHeld((name) => {
        const error = throwsWith(TypeError, () => construct(name, { retry_interval: 100 }));
        expect(error.message).toContain("'retry_interval'");
        expect(error.message).toContain('retryInterval'); // among the allowed options
      });
    });

    it(`refuses a plain object as client with a TypeError naming ${definition.library}`, async () => {
      await whileHeld((name) => {
        const error = throwsWith(TypeError, () => new LockClass(name, { client: {} }));
        expect(error.message).toContain(`the ${definition.library} library`);
        expect(error.message).toContain(`the ${fixture.name} backend`);
      });
    });

    it(`refuses a client of another class with a TypeError naming ${definition.library} and that class`, async () => {
      await whileHeld((name) => {
        const error = throwsWith(
          TypeError,
          () => new LockClass(name, { client: new ForeignClient() }),
        );
        expect(error.message).toContain(`the ${definition.library} library`);
        expect(error.message).toContain('ForeignClient');
      });
    });

    // The expiry limits the backend declares (definition.capabilities.expiry), and no others.
    const { minimum, maximum } = definition.capabilities.expiry;
    if (maximum !== null) {
      it(`refuses expire above its declared maximum of ${maximum} ms, accepts exactly that`, () => {
        const tooLong = maximum + 1;
        const error = throwsWith(RangeError, () => construct(uniqueName(), { expire: tooLong }));
        expectOptionError(error, { option: 'expire', value: tooLong, type: RangeError });
        expect(error.message).toMatch(
          new RegExp(`at most ${maximum} ms( \\(.*\\))? on ${fixture.name}`),
        );
        expect(construct(uniqueName(), { expire: maximum }).expire).toBe(maximum);
      });
    } else {
      it('declares no maximum expire: accepts 31 days (a memcached limit)', () => {
        expect(construct(uniqueName(), { expire: THIRTY_ONE_DAYS_MS }).expire).toBe(
          THIRTY_ONE_DAYS_MS,
        );
      });
    }
    if (minimum > 1) {
      it(`refuses expire below its declared minimum of ${minimum} ms, accepts exactly that`, () => {
        for (const tooShort of [1, minimum - 1]) {
          const error = throwsWith(RangeError, () => construct(uniqueName(), { expire: tooShort }));
          expectOptionError(error, { option: 'expire', value: tooShort, type: RangeError });
          expect(error.message).toContain(`at least ${minimum} ms on ${fixture.name}`);
        }
        expect(construct(uniqueName(), { expire: minimum }).expire).toBe(minimum);
      });
    } else {
      it('declares no minimum expire beyond 1 ms: accepts 1 ms', () => {
        expect(construct(uniqueName(), { expire: 1 }).expire).toBe(1);
      });
    }
  });

  describe('acquire() arguments', () => {
    for (const { label, arg, type, mentions } of BAD_ACQUIRE_ARGS) {
      it(`acquire(${label}) rejects with a ${type.name}, takes nothing and disturbs no holder`, async () => {
        const acquireWith = (name: string) => {
          const lock = backend.lock(name);
          return { lock, acquiring: () => lock.acquire(arg as AcquireOptions) };
        };

        // On a free lock: refused, and nothing taken.
        const free = acquireWith(uniqueName());
        const { error } = await rejectsWith(type, free.acquiring);
        for (const text of mentions) expect(error.message).toContain(text);
        expect(free.lock.isAcquired).toBe(false);
        expect(await backend.isLocked(free.lock.name)).toBe(false);

        // On a held lock: refused, the holder keeps it, and no acquire is left in progress.
        await whileHeld(async (name) => {
          const held = acquireWith(name);
          await rejectsWith(type, held.acquiring);
          expect(await held.lock.acquire(false)).toBe(false);
        });
      });
    }
  });

  describe('generic Lock', () => {
    it('works with the configured backend and client: acquire, locked, release, using, dispose', async () => {
      configure({ backend: fixture.name as BackendName, client: backend.client });
      const name = uniqueName();
      const lock = backend.track(new Lock(name));
      expect(lock.backendLock).toBeInstanceOf(LockClass);
      expect(lock.name).toBe(name);
      expect(lock.key).toBe(name);

      expect(await lock.acquire(false)).toBe(true);
      expect(lock.isAcquired).toBe(true);
      expect(await lock.locked()).toBe(true);
      expect(await backend.isLocked(name)).toBe(true); // on the test server
      await lock.release();
      expect(lock.isAcquired).toBe(false);
      expect(await backend.isLocked(name)).toBe(false);

      const result = await lock.using(async (held) => {
        expect(held).toBe(lock);
        expect(await backend.isLocked(name)).toBe(true);
        return 'done';
      });
      expect(result).toBe('done');
      expect(await backend.isLocked(name)).toBe(false);

      expect(await lock.acquire(false)).toBe(true);
      await lock[Symbol.asyncDispose]();
      expect(lock.isAcquired).toBe(false);
      expect(await backend.isLocked(name)).toBe(false);
    });

    it('configure() accepts the backend as its definition or its name in any case', () => {
      configure({ backend: definition });
      expect(getConfiguration().backend).toBe(definition);
      resetConfiguration();
      configure({ backend: fixture.name.toUpperCase() as BackendName });
      expect(getConfiguration().backend).toBe(definition);
      expect(new Lock(uniqueName(), { operationTimeout: 1_000 }).backendLock).toBeInstanceOf(
        LockClass,
      );
    });

    it('configure({ client }) alone selects the backend by the class of the client', async () => {
      configure({ client: backend.client });
      const configuration = getConfiguration();
      expect(configuration.backend).toBe(definition);
      expect(configuration.client).toBe(backend.client);

      const name = uniqueName();
      const lock = backend.track(new Lock(name));
      expect(lock.backendLock).toBeInstanceOf(LockClass);
      expect(await lock.acquire(false)).toBe(true);
      expect(await backend.isLocked(name)).toBe(true);
      await lock.release();
    });

    it(`configure({ backend: '${fixture.name}', client }) with a client of another class throws a TypeError naming ${definition.library}, changing nothing`, () => {
      configure({
        backend: fixture.name as BackendName,
        client: backend.client,
        namespace: 'before',
      });
      const before = getConfiguration();
      const error = throwsWith(TypeError, () =>
        configure({
          backend: fixture.name as BackendName,
          client: new ForeignClient(),
          timeout: 1,
        }),
      );
      expect(error.message).toContain(`the ${definition.library} library`);
      expectConfigurationUnchanged(getConfiguration(), before);
    });

    it('new Lock(name, { client }) is refused with a TypeError', () => {
      configure({ backend: fixture.name as BackendName, client: backend.client });
      const error = throwsWith(
        TypeError,
        () => new Lock(uniqueName(), { client: backend.client } as LockOptions),
      );
      expect(error.message).toContain("'client'");
      expect(error.message).toContain(LockClass.name);
    });

    for (const bad of BAD_OPTIONS) {
      it(`configure({ ${bad.option}: ${String(bad.value)} }) throws a ${bad.type.name} and changes nothing, not even valid options given with it`, async () => {
        configure({
          backend: fixture.name as BackendName,
          client: backend.client,
          namespace: 'before',
        });
        const before = getConfiguration();
        const error = throwsWith(bad.type, () =>
          configure({ retryInterval: 7, [bad.option]: bad.value } as ConfigureOptions),
        );
        expectOptionError(error, bad);
        expectConfigurationUnchanged(getConfiguration(), before);
      });
    }

    it('configure() with an unknown option or an unknown backend throws and changes nothing', () => {
      configure({ backend: fixture.name as BackendName, client: backend.client });
      const before = getConfiguration();
      const unknownOption = throwsWith(TypeError, () =>
        configure({ retry_interval: 100 } as ConfigureOptions),
      );
      expect(unknownOption.message).toContain("'retry_interval'");
      const unknownBackend = throwsWith(RangeError, () =>
        configure({ backend: 'nope' as BackendName }),
      );
      expect(unknownBackend.message).toContain(shown('nope'));
      expectConfigurationUnchanged(getConfiguration(), before);
    });
  });

  it(`${LockClass.name} without a client uses the client given to configure() for this backend`, async () => {
    configure({ backend: fixture.name as BackendName, client: backend.client });
    const name = uniqueName();
    const lock = backend.track(new LockClass(name, { operationTimeout: 2_000 }));
    expect(await lock.acquire(false)).toBe(true);
    // A lock object with an explicit client to the test server sees it held.
    expect(await backend.isLocked(name)).toBe(true);
    await lock.release();
    expect(await backend.isLocked(name)).toBe(false);
  });

  it('shutdown() releases every held lock and leaves the clients the user gave open', async () => {
    const names = [uniqueName('first'), uniqueName('second')];
    const locks = [backend.lock(names[0] ?? ''), backend.otherLock(names[1] ?? '')];
    for (const lock of locks) expect(await lock.acquire(false)).toBe(true);
    expect(heldLocks()).toEqual(expect.arrayContaining(locks));

    const report = await shutdown();
    expect(report.released).toEqual(expect.arrayContaining(names));
    expect(report.failed).toEqual([]);
    expect(heldLocks()).toEqual([]);
    for (const lock of locks) expect(lock.isAcquired).toBe(false);
    for (const name of names) expect(await backend.isLocked(name)).toBe(false);

    // Both user-provided clients still work.
    for (const client of new Set([backend.client, backend.otherClient])) {
      const lock = backend.track(new LockClass(uniqueName(), { client }));
      expect(await lock.acquire(false)).toBe(true);
      expect(await lock.locked()).toBe(true);
      await lock.release();
    }
  });
}
