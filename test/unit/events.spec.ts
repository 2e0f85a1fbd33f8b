/**
 * Lock events on a fake backend and a fake clock: each event type, its fields (name, key,
 * backend, fencing token, waited and held durations), their order, the diagnostics channels, and
 * that nothing is built when nobody listens.
 */
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configure, resetConfiguration } from '../../lib/core/configuration.js';
import {
  LockBackendError,
  LockLostError,
  LockNotHeldError,
  LockTimeoutError,
} from '../../lib/core/errors/index.js';
import {
  LOCK_CHANNELS,
  LOCK_EVENT_TYPES,
  type LockEvent,
  lockEvents,
  type LockEventType,
} from '../../lib/core/events.js';
import { LockManager } from '../../lib/core/manager.js';
import type { BaseLock } from '../../lib/core/base-lock.js';
import { registerFake } from './fake-backend.js';
import { advance, rejectionOf, useFakeClock, watch } from './helpers.js';

const fake = registerFake({ name: 'unitEvents', fencing: true });
const pushed = registerFake({ name: 'unitEventsPush', push: true, fencing: true });
const control = fake.control;

useFakeClock();

let locks: LockManager;
let events: LockEvent[];
const record = (event: LockEvent) => events.push(event);

/** Listens for every event type on `target`; returns how to stop. */
function listenAll(target: {
  on(type: LockEventType, fn: (e: LockEvent) => void): unknown;
  off(type: LockEventType, fn: (e: LockEvent) => void): unknown;
}): () => void {
  for (const type of LOCK_EVENT_TYPES) target.on(type, record);
  return () => {
    for (const type of LOCK_EVENT_TYPES) target.off(type, record);
  };
}

const types = () => events.map((event) => event.type);
const only = <T extends LockEventType>(type: T) =>
  events.filter((event): event is Extract<LockEvent, { type: T }> => event.type === type);

beforeEach(() => {
  fake.control.reset();
  pushed.control.reset();
  locks = new LockManager({ backend: 'unitEvents', expire: 10_000 });
  events = [];
  listenAll(locks);
});

afterEach(() => {
  resetConfiguration();
});

describe('lock events', () => {
  it('acquired and released carry the name, key, backend, fencing token, waited and held', async () => {
    const lock = locks.lock('job', { namespace: 'ns' });
    await lock.acquire();
    await advance(1_234);
    const token = lock.fencingToken;
    await lock.release();
    expect(token).toBeDefined();
    expect(events).toEqual([
      {
        type: 'acquired',
        lock,
        name: 'job',
        key: 'ns_job',
        backend: 'unitEvents',
        fencingToken: token,
        waited: 0,
        held: 0,
        blocking: true,
      },
      {
        type: 'released',
        lock,
        name: 'job',
        key: 'ns_job',
        backend: 'unitEvents',
        fencingToken: token,
        waited: 0,
        held: 1_234,
      },
    ]);
  });

  it('a blocking acquire that waits: waiting once, then acquired with the time waited', async () => {
    control.holdElsewhere('job', 3_000);
    const lock = locks.lock('job', { retryInterval: 400, timeout: 20_000 });
    const acquiring = watch(lock.acquire());
    await advance(5_000);
    expect(acquiring.value).toBe(true);
    expect(types()).toEqual(['waiting', 'acquired']);
    const [waiting] = only('waiting');
    expect(waiting).toMatchObject({ name: 'job', waited: 0, held: 0, timeout: 20_000 });
    expect(waiting?.fencingToken).toBeUndefined();
    const [acquired] = only('acquired');
    // Granted on the first poll after the holder's 3 s ran out.
    expect(acquired?.waited).toBeGreaterThanOrEqual(3_000);
    expect(acquired?.waited).toBeLessThan(3_500);
    expect(acquired?.fencingToken).toBe(lock.fencingToken);
    await advance(2_000);
    await lock.release();
    const [released] = only('released');
    expect(released?.waited).toBe(acquired?.waited);
    expect(released?.held).toBe(7_000 - (acquired?.waited ?? 0));
  });

  it('waiting says the holder ttl and place in line when the backend reports them', async () => {
    pushed.control.refusal = { holderTtl: 7_000, position: 2 };
    pushed.control.holdElsewhere('q', 7_000);
    const mine = new LockManager({ backend: 'unitEventsPush' });
    listenAll(mine);
    const acquiring = watch(mine.lock('q', { timeout: 1_000 }).acquire());
    await advance(3_000);
    expect(acquiring.error).toBeInstanceOf(LockTimeoutError);
    expect(types()).toEqual(['waiting', 'timeout']);
    expect(only('waiting')[0]).toMatchObject({ holderTtl: 7_000, position: 2 });
  });

  it('timeout carries the error the acquire rejects with and the time waited', async () => {
    control.holdElsewhere('job');
    const lock = locks.lock('job', { timeout: 2_000, retryInterval: 500 });
    const acquiring = watch(lock.acquire());
    await advance(3_000);
    const error = acquiring.error;
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(types()).toEqual(['waiting', 'timeout']);
    const [timeout] = only('timeout');
    expect(timeout?.error).toBe(error);
    expect(timeout?.waited).toBeGreaterThanOrEqual(2_000);
    expect(timeout?.held).toBe(0);
  });

  it('busy for a refused non-blocking attempt, with retryAfter; no waiting', async () => {
    control.holdElsewhere('job', 4_000);
    control.reportHolderTtl = true;
    const lock = locks.lock('job');
    expect(await lock.acquire(false)).toBe(false);
    expect(types()).toEqual(['busy']);
    expect(only('busy')[0]).toMatchObject({ name: 'job', held: 0, retryAfter: 4_000 });
  });

  it('a server failure on a non-blocking attempt is no busy event', async () => {
    control.failNext('acquire');
    const error = await rejectionOf(locks.lock('job').acquire(false));
    expect(error).toBeInstanceOf(LockBackendError);
    expect(events).toEqual([]);
  });

  it('extended (by extend() and by autoExtend) and extend-failed, then lost', async () => {
    const lock = locks.lock('job', { expire: 10_000, autoExtend: true });
    await lock.acquire();
    await lock.extend(20_000);
    expect(only('extended')).toEqual([
      expect.objectContaining({ ttl: 20_000, automatic: false, held: 0 }),
    ]);
    // autoExtend renews every third of expire.
    await advance(10_000 / 3 + 1);
    expect(only('extended').map((e) => e.automatic)).toEqual([false, true]);
    control.failNext('extend');
    await advance(10_000 / 3 + 1);
    const [failed] = only('extend-failed');
    expect(failed).toMatchObject({ automatic: true, ttl: 10_000 });
    expect(failed?.error).toBeInstanceOf(LockBackendError);
    // Another owner takes it: the next renewal finds out.
    control.drop('job');
    control.holdElsewhere('job');
    await advance(10_000 / 3 + 1);
    expect(types().slice(-2)).toEqual(['extend-failed', 'lost']);
    expect(only('extend-failed')[1]?.error).toBeInstanceOf(LockNotHeldError);
    const [lost] = only('lost');
    expect(lost?.error).toBeInstanceOf(LockLostError);
    expect(lost?.error.reason).toBe('taken');
    expect(lost?.fencingToken).toBeDefined();
    expect(lost?.held).toBeGreaterThan(9_000);
    // Releasing a lost lock fails (not owned): no released event.
    await rejectionOf(lock.release());
    expect(only('released')).toEqual([]);
  });

  it('a renewal racing release() is no extend-failed and no loss', async () => {
    const lock = locks.lock('job', { expire: 3_000, autoExtend: true });
    await lock.acquire();
    control.latency.release = 100;
    control.latency.extend = 100;
    await advance(999); // the renewal goes out at 1000 ms
    const releasing = watch(lock.release());
    await advance(500);
    expect(releasing.state).toBe('fulfilled');
    expect(types()).not.toContain('extend-failed');
    expect(types()).not.toContain('lost');
    expect(types()).toContain('released');
  });

  it("every manager's events go to their diagnostics channels (the default manager's too)", async () => {
    const seen: [string, unknown][] = [];
    const handlers = LOCK_EVENT_TYPES.map((type) => {
      const handler = (message: unknown) => seen.push([type, message]);
      subscribe(LOCK_CHANNELS[type], handler);
      return [type, handler] as const;
    });
    try {
      configure({ backend: 'unitEvents' });
      const LockClass = fake.definition.lockClass;
      const lock = new LockClass('global') as BaseLock;
      await lock.acquire();
      await lock.release();
      expect(seen.map(([type]) => type)).toEqual(['acquired', 'released']);
      expect(seen[0]?.[1]).toMatchObject({ type: 'acquired', name: 'global', lock });
      expect(events).toEqual([]); // the default manager's events are not this manager's
    } finally {
      for (const [type, handler] of handlers) unsubscribe(LOCK_CHANNELS[type], handler);
    }
    expect(LOCK_CHANNELS.acquired).toBe('nestjs-sherlock:lock:acquired');
  });

  it('lockEvents gets the default manager events, typed by name', async () => {
    const acquired: string[] = [];
    const onAcquired = ({ name, waited }: { name: string; waited: number }) =>
      acquired.push(`${name}:${waited}`);
    lockEvents.on('acquired', onAcquired);
    try {
      configure({ backend: 'unitEvents' });
      const lock = new fake.definition.lockClass('global') as BaseLock;
      await lock.acquire();
      await lock.release();
    } finally {
      lockEvents.off('acquired', onAcquired);
    }
    expect(acquired).toEqual(['global:0']);
  });

  it('once() listens for one event', async () => {
    const mine = new LockManager({ backend: 'unitEvents' });
    const names: string[] = [];
    mine.once('acquired', ({ name }) => names.push(name));
    for (const name of ['a', 'b']) {
      const lock = mine.lock(name);
      await lock.acquire();
      await lock.release();
    }
    expect(names).toEqual(['a']);
  });

  it('a listener that throws does not break the lock: its error comes on the next tick', async () => {
    const mine = new LockManager({ backend: 'unitEvents' });
    const boom = new Error('listener bug');
    mine.on('acquired', () => {
      throw boom;
    });
    const thrown: unknown[] = [];
    const onUncaught = (err: unknown) => thrown.push(err);
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onUncaught);
    try {
      const lock = mine.lock('job');
      expect(await lock.acquire()).toBe(true);
      expect(lock.isAcquired).toBe(true);
      await new Promise((resolve) => process.nextTick(resolve));
      await lock.release();
    } finally {
      process.off('uncaughtException', onUncaught);
      for (const listener of listeners) process.on('uncaughtException', listener);
    }
    expect(thrown).toEqual([boom]);
  });

  it('builds no event when nobody listens', async () => {
    const quiet = new LockManager({ backend: 'unitEvents' });
    for (const type of LOCK_EVENT_TYPES) expect(quiet.observes(type)).toBe(false);
    quiet.on('released', record);
    expect(quiet.observes('released')).toBe(true);
    expect(quiet.observes('acquired')).toBe(false);
    const lock = quiet.lock('job');
    await lock.acquire();
    await lock.release();
    expect(types()).toEqual(['released']);
    quiet.off('released', record);
    expect(quiet.observes('released')).toBe(false);
    const handler = () => undefined;
    subscribe(LOCK_CHANNELS.busy, handler);
    expect(quiet.observes('busy')).toBe(true);
    unsubscribe(LOCK_CHANNELS.busy, handler);
    expect(quiet.observes('busy')).toBe(false);
  });

  it('the members of a multi-lock emit as locks do', async () => {
    const both = locks.lockAll(['a', 'b']);
    await both.acquire();
    await both.release();
    expect(events.map((e) => `${e.type}:${e.name}`)).toEqual([
      'acquired:a',
      'acquired:b',
      'released:a',
      'released:b',
    ]);
  });
});
