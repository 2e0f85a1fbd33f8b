/**
 * Semaphore in the core, against fake backends and the fake clock: `limit` and option validation
 * (typed errors naming the option, the value and what is allowed), the refusal of a backend
 * without semaphore primitives (UnsupportedFeatureError with the backend's reason), the
 * registry's checks of a declared semaphore, and that a semaphore runs on the core's machinery:
 * its primitives get the Semaphore (with its limit) as target, the wait session polls or waits
 * for a hand-off and times out like a lock's, the hold renews and loses like a lock's, and the
 * manager tracks, reports and releases permits like locks.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type {
  AttemptOutcome,
  LockBackend,
  SemaphoreBackend,
  SemaphoreTarget,
} from '../../lib/core/backend.js';
import { configure, resetConfiguration } from '../../lib/core/configuration.js';
import {
  LockBackendError,
  LockError,
  LockLostError,
  LockNotHeldError,
  LockTimeoutError,
  UnsupportedFeatureError,
} from '../../lib/core/errors/index.js';
import type { LockLostEvent } from '../../lib/core/events.js';
import { LockManager } from '../../lib/core/manager.js';
import { messages } from '../../lib/core/messages.js';
import { backends } from '../../lib/core/registry.js';
import { Semaphore } from '../../lib/core/semaphore.js';
import { FakeClient, registerFake } from './fake-backend.js';
import { advance, elapsed, flush, rejectionOf, useFakeClock, watch } from './helpers.js';

useFakeClock();

/** What the fake semaphore saw. */
interface Call {
  readonly op: 'acquire' | 'release' | 'extend' | 'count' | 'open' | 'listen' | 'close';
  readonly target: SemaphoreTarget;
  readonly token?: string | undefined;
  readonly held?: unknown;
  readonly ttl?: number | undefined;
  readonly at: number;
}

/** A fake semaphore over a map (token -> expiry, on the fake clock), and its knobs. */
class FakePermits {
  readonly holders = new Map<string, Map<string, number>>();
  calls: Call[] = [];
  fence = 0;
  /** The next `count` calls throw this. */
  countError: unknown;
  /** Waiters opened by the hand-off, to wake them from a test. */
  wakes: (() => void)[] = [];

  reset(): void {
    this.holders.clear();
    this.calls = [];
    this.countError = undefined;
    this.wakes = [];
  }

  private live(key: string): Map<string, number> {
    const permits = this.holders.get(key) ?? new Map<string, number>();
    for (const [token, until] of permits) if (until <= performance.now()) permits.delete(token);
    this.holders.set(key, permits);
    return permits;
  }

  readonly primitives = (push: boolean): SemaphoreBackend<FakeClient, { fence: number }> => ({
    acquire: async (target, token): Promise<AttemptOutcome<{ fence: number }>> => {
      this.calls.push({ op: 'acquire', target, token, at: elapsed() });
      const permits = this.live(target.key);
      if (permits.size >= target.limit) {
        const first = Math.min(...permits.values());
        return { granted: false, holderTtl: first === Infinity ? -1 : first - performance.now() };
      }
      permits.set(token, target.expire === null ? Infinity : performance.now() + target.expire);
      this.fence += 1;
      return { granted: true, fencingToken: String(this.fence), held: { fence: this.fence } };
    },
    release: async (target, token, held) => {
      this.calls.push({ op: 'release', target, token, held, at: elapsed() });
      const released = this.live(target.key).delete(token);
      if (released) for (const wake of this.wakes) wake();
      return released;
    },
    extend: async (target, token, ttl, held) => {
      this.calls.push({ op: 'extend', target, token, ttl, held, at: elapsed() });
      const permits = this.live(target.key);
      if (!permits.has(token)) return false;
      permits.set(token, performance.now() + ttl);
      return true;
    },
    count: async (target) => {
      this.calls.push({ op: 'count', target, at: elapsed() });
      if (this.countError !== undefined) throw this.countError;
      return this.live(target.key).size;
    },
    ...(push
      ? {
          handOff: {
            open: (target, wake) => {
              this.calls.push({ op: 'open', target, at: elapsed() });
              this.wakes.push(wake);
              return { wake };
            },
            listen: async (target) => {
              this.calls.push({ op: 'listen', target, at: elapsed() });
              return true;
            },
            close: (target, waiter: { wake: () => void }) => {
              this.calls.push({ op: 'close', target, at: elapsed() });
              this.wakes = this.wakes.filter((wake) => wake !== waiter.wake);
            },
          },
        }
      : {}),
  });
}

const permits = new FakePermits();

/** A declared backend whose locks are never used here (their primitives fail loudly). */
function semaphoreBackend(name: string, push: boolean): LockBackend<FakeClient> {
  const never = async (): Promise<never> => {
    throw new Error('a lock primitive was called for a semaphore');
  };
  return {
    name,
    library: 'fake-semaphore',
    capabilities: {
      fencing: true,
      extend: true,
      handOff: push ? 'push' : 'poll',
      crossProcess: false,
      expiry: { granularity: 1, minimum: 1, maximum: null, earlyBy: 0 },
      semaphore: true,
    },
    clientClass: () => FakeClient,
    connect: () => new FakeClient(),
    acquire: never,
    release: never,
    locked: never,
    extend: never,
    ...(push
      ? { handOff: { open: () => ({}), listen: async () => true, close: () => undefined } }
      : {}),
    semaphore: permits.primitives(push) as SemaphoreBackend<FakeClient>,
  };
}

const POLLING = backends.register(semaphoreBackend('unitSemaphorePoll', false));
const PUSHING = backends.register(semaphoreBackend('unitSemaphorePush', true));
// A backend without semaphore primitives, and one saying why.
registerFake({ name: 'unitSemaphoreNone' });
backends.register({
  ...semaphoreBackend('unitSemaphoreWhy', false),
  capabilities: { ...semaphoreBackend('x', false).capabilities, semaphore: false },
  semaphore: undefined,
  unsupported: { semaphore: 'it cannot count its holders atomically' },
});

beforeEach(() => permits.reset());
afterEach(() => resetConfiguration());

const LIMIT = 'a whole number of permits >= 1';

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

describe('limit and options', () => {
  const bad: [string, unknown, typeof RangeError | typeof TypeError][] = [
    ['0', 0, RangeError],
    ['-1', -1, RangeError],
    ['1.5', 1.5, RangeError],
    ['NaN', Number.NaN, RangeError],
    ['Infinity', Infinity, RangeError],
    ['2 ** 53', 2 ** 53, RangeError],
    ['"2"', '2', TypeError],
    ['null', null, TypeError],
    ['undefined', undefined, TypeError],
  ];
  it.each(bad.map(([shown, limit, type]) => [shown, type.name, limit, type] as const))(
    'refuses limit %s with a %s naming the option, the value and what is allowed',
    (_shown, _name, limit, type) => {
      const manager = new LockManager({ backend: POLLING });
      for (const make of [
        () => manager.semaphore('s', limit as number),
        () => {
          configure({ backend: POLLING });
          return new Semaphore('s', { limit: limit as number });
        },
      ]) {
        const error = thrown(make);
        expect(error).toBeInstanceOf(type);
        expect(error.message).toBe(messages.invalidOption('limit', limit, LIMIT));
      }
    },
  );

  it('takes 1 and large whole numbers', () => {
    const manager = new LockManager({ backend: POLLING });
    expect(manager.semaphore('s', 1).limit).toBe(1);
    expect(manager.semaphore('s', 10_000).limit).toBe(10_000);
  });

  it('refuses unknown options (a client, a limit in the options of manager.semaphore())', () => {
    configure({ backend: POLLING });
    const client = thrown(
      () => new Semaphore('s', { limit: 2, client: new FakeClient() } as { limit: number }),
    );
    expect(client).toBeInstanceOf(TypeError);
    expect(client.message).toMatch(/^Unknown option 'client' for Semaphore options/);
    const manager = new LockManager({ backend: POLLING });
    const limit = thrown(() => manager.semaphore('s', 2, { limit: 3 } as object));
    expect(limit.message).toMatch(/^Unknown option 'limit' for semaphore options/);
    expect(thrown(() => new Semaphore('s', undefined as never))).toBeInstanceOf(TypeError);
  });

  it('takes the lock options over the manager’s defaults, checked like a lock’s', () => {
    const manager = new LockManager({ backend: POLLING, expire: 9_000, namespace: 'ns' });
    const sem = manager.semaphore('s', 2, { timeout: 1_234, autoExtend: true });
    expect([sem.expire, sem.timeout, sem.namespace, sem.key]).toEqual([9_000, 1_234, 'ns', 'ns_s']);
    expect(sem.renewEvery).toBe(3_000);
    expect(thrown(() => manager.semaphore('', 2))).toBeInstanceOf(RangeError);
    expect(thrown(() => manager.semaphore('s', 2, { expire: -1 }))).toBeInstanceOf(RangeError);
  });

  it('new Semaphore() without a configured backend is a LockError saying what to do', () => {
    const error = thrown(() => new Semaphore('s', { limit: 2 }));
    expect(error).toBeInstanceOf(LockError);
    expect(error.message).toBe(messages.noBackendFor('semaphore', 's'));
  });

  it('a closed manager makes no more semaphores', async () => {
    const manager = new LockManager({ backend: POLLING });
    await manager.close();
    const error = thrown(() => manager.semaphore('s', 2));
    expect(error).toBeInstanceOf(LockError);
    expect(error.message).toBe(messages.managerClosed('unitSemaphorePoll'));
  });
});

describe('a backend without semaphore primitives', () => {
  it('refuses with an UnsupportedFeatureError: its own reason, or that it implements none', () => {
    const why = thrown(() => new LockManager({ backend: 'unitSemaphoreWhy' }).semaphore('s', 2));
    expect(why).toBeInstanceOf(UnsupportedFeatureError);
    expect(why).toBeInstanceOf(LockError);
    const error = why as UnsupportedFeatureError;
    expect([error.backend, error.feature, error.reason, error.lockName]).toEqual([
      'unitSemaphoreWhy',
      'semaphore',
      'it cannot count its holders atomically',
      's',
    ]);
    expect(error.message).toBe(
      'The unitSemaphoreWhy backend does not offer a semaphore: it cannot count its holders atomically',
    );
    expect(error.name).toBe('UnsupportedFeatureError');

    configure({ backend: 'unitSemaphoreNone' });
    const none = thrown(() => new Semaphore('s', { limit: 2 })) as UnsupportedFeatureError;
    expect(none).toBeInstanceOf(UnsupportedFeatureError);
    expect(none.reason).toBe(messages.noSemaphores);
  });
});

describe('backends.register() of a declared semaphore', () => {
  const base = () => semaphoreBackend('unitSemaphoreDecl', true);
  const refusal = (change: Record<string, unknown>) =>
    thrown(() => backends.register({ ...base(), ...change } as LockBackend));

  it('checks it against the capabilities', () => {
    const caps = base().capabilities;
    expect(refusal({ semaphore: undefined }).message).toMatch(
      /^Invalid option 'capabilities.semaphore': got true, expected false/,
    );
    expect(refusal({ capabilities: { ...caps, semaphore: false } }).message).toMatch(
      /^Invalid option 'capabilities.semaphore': got false, expected true/,
    );
    expect(refusal({ capabilities: { ...caps, semaphore: 'yes' } }).message).toMatch(
      /^Invalid option 'capabilities.semaphore'/,
    );
    const { count: _count, ...noCount } = base().semaphore as SemaphoreBackend;
    expect(refusal({ semaphore: noCount }).message).toMatch(/^Invalid option 'semaphore.count'/);
    const { extend: _extend, ...noExtend } = base().semaphore as SemaphoreBackend;
    expect(refusal({ semaphore: noExtend }).message).toMatch(
      /^Invalid option 'semaphore.extend': got undefined, expected a function/,
    );
    const { handOff: _handOff, ...noHandOff } = base().semaphore as SemaphoreBackend;
    expect(refusal({ semaphore: noHandOff }).message).toMatch(
      /^Invalid option 'semaphore.handOff': got undefined, expected an implementation/,
    );
    expect(refusal({ unsupported: { semaphore: '' } }).message).toMatch(
      /^Invalid option 'unsupported.semaphore'/,
    );
    expect(backends.names()).not.toContain('unitSemaphoreDecl');
    expect(backends.register(base()).capabilities.semaphore).toBe(true);
  });
});

describe('a semaphore on the core’s machinery', () => {
  it('gives its primitives the Semaphore itself as target (limit included), a fresh token per attempt, and back the held value', async () => {
    const manager = new LockManager({ backend: POLLING, expire: 5_000 });
    const sem = manager.semaphore('jobs', 2);
    expect(sem).toBeInstanceOf(Semaphore);
    expect(sem.backend).toBe(POLLING);
    expect(await sem.acquire(false)).toBe(true);
    expect(sem.fencingToken).toBe('1');
    await sem.extend(8_000);
    expect(await sem.count()).toBe(1);
    expect(await sem.locked()).toBe(false);
    await sem.release();
    const [acquire, extend, count, , release] = permits.calls;
    expect(acquire?.target).toBe(sem);
    expect(acquire?.target.limit).toBe(2);
    expect(acquire?.token).toMatch(/^[0-9a-f]{32}\|\d+\|\d+\|[^|]*\|[^|]*$/);
    expect(extend).toMatchObject({ op: 'extend', token: acquire?.token, ttl: 8_000 });
    expect(extend?.held).toEqual({ fence: 1 });
    expect(count?.op).toBe('count');
    expect(release).toMatchObject({ op: 'release', token: acquire?.token, held: { fence: 1 } });
  });

  it('locked() is "every permit taken"; count() failures are LockBackendErrors naming count', async () => {
    const manager = new LockManager({ backend: POLLING });
    const [a, b] = [manager.semaphore('full', 2), manager.semaphore('full', 2)];
    await a.acquire(false);
    expect(await a.locked()).toBe(false);
    await b.acquire(false);
    expect(await a.locked()).toBe(true);
    expect(await manager.semaphore('full', 3).locked()).toBe(false);
    permits.countError = new Error('server down');
    const error = (await rejectionOf(a.count())) as LockBackendError;
    expect(error).toBeInstanceOf(LockBackendError);
    expect(error.operation).toBe('count');
    expect(error.cause).toBe(permits.countError);
  });

  it('a blocking acquire polls every retryInterval (with jitter) while full, and times out with LockTimeoutError carrying the first expiry', async () => {
    const manager = new LockManager({ backend: POLLING, expire: 60_000 });
    await manager.semaphore('busy', 1).acquire(false);
    const waiter = manager.semaphore('busy', 1, { retryInterval: 100, timeout: 1_000 });
    const acquiring = watch(waiter.acquire());
    await advance(1_100);
    expect(acquiring.state).toBe('rejected');
    const error = acquiring.error as LockTimeoutError;
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(error.timeout).toBe(1_000);
    expect(error.retryAfter).toBeGreaterThan(58_000);
    const attempts = permits.calls.filter((c) => c.op === 'acquire' && c.target === waiter);
    // 75 % of 100 ms between attempts (Math.random is 0.5): at 0, 75, ..., 975, and a last
    // one at the deadline.
    expect(attempts.length).toBe(15);
    expect(waiter.isAcquired).toBe(false);
  });

  it('a blocking acquire on a pushing backend waits in its hand-off (no polling) and is woken by the release', async () => {
    const manager = new LockManager({ backend: PUSHING, expire: 60_000 });
    const holder = manager.semaphore('push', 1);
    await holder.acquire(false);
    const waiter = manager.semaphore('push', 1, { retryInterval: 10, timeout: 30_000 });
    const acquiring = watch(waiter.acquire());
    await advance(1_000);
    const before = permits.calls.filter((c) => c.op === 'acquire' && c.target === waiter).length;
    expect(before).toBe(1); // listening: it sleeps until woken (fallback poll: 2 s)
    expect(permits.calls.filter((c) => c.op === 'open')[0]?.target).toBe(waiter);
    await holder.release();
    await flush();
    expect(acquiring.state).toBe('fulfilled');
    expect(acquiring.at).toBeLessThan(1_010);
    expect(permits.calls.at(-1)).toMatchObject({ op: 'close', target: waiter });
  });

  it('holds like a lock: autoExtend renews, the signal aborts and the manager emits lost when renewal fails', async () => {
    const manager = new LockManager({ backend: POLLING, expire: 3_000, autoExtend: true });
    const lost: LockLostEvent[] = [];
    manager.on('lost', (event) => lost.push(event));
    const sem = manager.semaphore('renewed', 1);
    await sem.acquire(false);
    await advance(10_000);
    expect(permits.calls.filter((c) => c.op === 'extend')).toHaveLength(10);
    expect(sem.signal.aborted).toBe(false);
    // The server forgets the permit: the next renewal finds it gone.
    permits.holders.clear();
    await advance(1_000);
    expect(sem.signal.aborted).toBe(true);
    expect(sem.signal.reason).toBeInstanceOf(LockLostError);
    expect((sem.signal.reason as LockLostError).reason).toBe('taken');
    expect(lost).toHaveLength(1);
    expect(lost[0]?.lock).toBe(sem);
  });

  it('is tracked by its manager while held, and released by close()', async () => {
    const manager = new LockManager({ backend: POLLING });
    const sem = manager.semaphore('tracked', 2);
    await sem.acquire(false);
    expect(manager.held()).toEqual([sem]);
    const report = await manager.close();
    expect(report.released).toEqual(['tracked']);
    expect(permits.calls.at(-1)).toMatchObject({ op: 'release', target: sem });
    const error = (await rejectionOf(sem.release())) as LockNotHeldError;
    expect(error.reason).toBe('not-acquired');
  });
});
