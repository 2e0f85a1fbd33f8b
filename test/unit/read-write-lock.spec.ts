/**
 * ReadWriteLock in the core, against a fake backend: its sides run the read-write primitives
 * with themselves as target (their `mode`), `locked()` per side from `state()`, option checks
 * (typed errors naming the option), the refusal of a backend without the primitives
 * (UnsupportedFeatureError with the backend's reason), and the registry's checks of a declared
 * read-write lock against the capabilities.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type {
  LockBackend,
  ReadWriteBackend,
  ReadWriteState,
  ReadWriteTarget,
} from '../../lib/core/backend.js';
import { configure, resetConfiguration } from '../../lib/core/configuration.js';
import { UnsupportedFeatureError } from '../../lib/core/errors/index.js';
import { LockManager } from '../../lib/core/manager.js';
import { messages } from '../../lib/core/messages.js';
import { ReadWriteLock, ReadWriteSide } from '../../lib/core/read-write-lock.js';
import { backends } from '../../lib/core/registry.js';
import { FakeClient, registerFake } from './fake-backend.js';

const calls: { op: string; mode: string; token?: string }[] = [];
let state: ReadWriteState = { readers: 0, writer: false, writerWaiting: false };
let fence = 0;

const primitives: ReadWriteBackend<FakeClient> = {
  async acquire(rw: ReadWriteTarget, token) {
    calls.push({ op: 'acquire', mode: rw.mode, token });
    return { granted: true, fencingToken: String(++fence) };
  },
  async release(rw, token) {
    calls.push({ op: 'release', mode: rw.mode, token });
    return true;
  },
  async state(rw) {
    calls.push({ op: 'state', mode: rw.mode });
    return state;
  },
  async extend(rw, token) {
    calls.push({ op: 'extend', mode: rw.mode, token });
    return true;
  },
};

function readWriteBackend(name: string): LockBackend<FakeClient> {
  const never = async (): Promise<never> => {
    throw new Error('a lock primitive was called for a read-write lock');
  };
  return {
    name,
    library: 'fake-rw',
    capabilities: {
      fencing: true,
      extend: true,
      handOff: 'poll',
      crossProcess: false,
      expiry: { granularity: 1, minimum: 1, maximum: null, earlyBy: 0 },
      readWrite: true,
    },
    clientClass: () => FakeClient,
    connect: () => new FakeClient(),
    acquire: never,
    release: never,
    locked: never,
    extend: never,
    readWrite: primitives,
  };
}

const FAKE = backends.register(readWriteBackend('unitReadWrite'));
registerFake({ name: 'unitReadWriteNone' });
backends.register({
  ...readWriteBackend('unitReadWriteWhy'),
  capabilities: { ...readWriteBackend('x').capabilities, readWrite: false },
  readWrite: undefined,
  unsupported: { readWrite: 'it cannot keep readers and writers apart atomically' },
});

afterEach(() => {
  resetConfiguration();
  calls.length = 0;
  state = { readers: 0, writer: false, writerWaiting: false };
});

function thrown(run: () => unknown): Error {
  try {
    run();
  } catch (err) {
    return err as Error;
  }
  throw new Error('it did not throw');
}

describe('ReadWriteLock on a fake backend', () => {
  it('its sides run the read-write primitives with their mode, as locks', async () => {
    const manager = new LockManager({ backend: FAKE, expire: 5_000 });
    const rw = manager.readWrite('prices');
    expect(rw.read).toBeInstanceOf(ReadWriteSide);
    expect([rw.read.mode, rw.write.mode]).toEqual(['read', 'write']);
    expect(await rw.read.acquire(false)).toBe(true);
    expect(await rw.write.acquire(false)).toBe(true);
    expect([rw.read.fencingToken, rw.write.fencingToken]).toEqual(['1', '2']);
    await rw.read.extend(1_000);
    expect(manager.held()).toEqual([rw.read, rw.write]);
    await rw.read.release();
    await rw.write.release();
    expect(calls.map((c) => `${c.op}:${c.mode}`)).toEqual([
      'acquire:read',
      'acquire:write',
      'extend:read',
      'release:read',
      'release:write',
    ]);
    await manager.close();
  });

  it('locked(): a read is refused while a writer holds or waits, a write while anyone holds', async () => {
    const rw = new LockManager({ backend: FAKE }).readWrite('p');
    state = { readers: 2, writer: false, writerWaiting: false };
    expect([await rw.read.locked(), await rw.write.locked()]).toEqual([false, true]);
    state = { readers: 2, writer: false, writerWaiting: true };
    expect([await rw.read.locked(), await rw.write.locked()]).toEqual([true, true]);
    state = { readers: 0, writer: true, writerWaiting: false };
    expect([await rw.read.locked(), await rw.write.locked()]).toEqual([true, true]);
    expect(await rw.state()).toEqual(state);
  });

  it('checks its options, naming the option', () => {
    const manager = new LockManager({ backend: FAKE });
    expect(thrown(() => manager.readWrite('p', { limit: 2 } as never)).message).toMatch(/limit/);
    expect(thrown(() => manager.readWrite('p', { expire: -1 })).message).toMatch(
      /Invalid option 'expire'/,
    );
    expect(thrown(() => manager.readWrite('')).message).toMatch(/non-empty/);
  });

  it('a backend without the primitives refuses it with an UnsupportedFeatureError and its reason', () => {
    const why = thrown(() => new LockManager({ backend: 'unitReadWriteWhy' }).readWrite('p'));
    expect(why).toBeInstanceOf(UnsupportedFeatureError);
    expect(why.message).toBe(
      'The unitReadWriteWhy backend does not offer a read-write lock: it cannot keep readers and writers apart atomically',
    );
    expect((why as UnsupportedFeatureError).feature).toBe('readWrite');
    configure({ backend: 'unitReadWriteNone' });
    const none = thrown(() => new ReadWriteLock('p')) as UnsupportedFeatureError;
    expect(none.reason).toBe(messages.noReadWrite);
  });
});

describe('backends.register() of a declared read-write lock', () => {
  const base = () => readWriteBackend('unitReadWriteDecl');
  const refusal = (change: Record<string, unknown>) =>
    thrown(() => backends.register({ ...base(), ...change } as LockBackend));

  it('checks it against the capabilities', () => {
    const caps = base().capabilities;
    expect(refusal({ readWrite: undefined }).message).toMatch(
      /^Invalid option 'capabilities.readWrite': got true, expected false/,
    );
    expect(refusal({ capabilities: { ...caps, readWrite: false } }).message).toMatch(
      /^Invalid option 'capabilities.readWrite': got false, expected true/,
    );
    const { state: _state, ...noState } = primitives;
    expect(refusal({ readWrite: noState }).message).toMatch(/^Invalid option 'readWrite.state'/);
    const { extend: _extend, ...noExtend } = primitives;
    expect(refusal({ readWrite: noExtend }).message).toMatch(/^Invalid option 'readWrite.extend'/);
    expect(
      refusal({
        capabilities: { ...caps, handOff: 'push' },
        handOff: {
          open: () => ({}),
          listen: async () => true,
          close: () => undefined,
        },
      }).message,
    ).toMatch(/^Invalid option 'readWrite.handOff'/);
    expect(refusal({ unsupported: { readWrite: '' } }).message).toMatch(
      /^Invalid option 'unsupported.readWrite'/,
    );
    expect(backends.names()).not.toContain('unitReadWriteDecl');
  });
});
