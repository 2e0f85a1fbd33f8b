/**
 * `autoExtend`: `true` renews every expire / 3, a number is the renewal interval in ms. The lock
 * stays held well past its expiry, the renewals stop with the release (watched on the server with
 * MONITOR), and settings that cannot work fail at construction and in configure().
 */
import { Redis } from 'ioredis';
import {
  configure,
  getConfiguration,
  lockEvents,
  type LockLostEvent,
  MemoryLock,
  RedisLock,
  resetConfiguration,
} from 'nestjs-sherlock';
import { afterAll, afterEach, describe, expect as globalExpect, it } from 'vitest';

import {
  type BackendFixture,
  EXTENDING,
  fixture,
  NOT_EXTENDING,
  uniqueName,
} from '../support/backends.js';
import { delay, now, waitFor } from '../support/helpers.js';
import { closeEtcdInspector, redisMonitor, redisRaw } from '../support/inspect.js';
import { scope } from '../support/locks.js';
import { type RedisServer, startRedis } from '../support/servers.js';

afterAll(closeEtcdInspector);

/**
 * expire for the long holds: a little longer where the server counts whole seconds. Long enough
 * that a renewal delayed by a loaded machine (CI once ran at load 17 on 2 cores, and a 3 s etcd
 * lock's signal gave up) still lands before the signal's margin.
 */
const expireFor = (f: BackendFixture): number =>
  f.capabilities.expiry.granularity >= 1_000 ? 6_000 : 4_000;

const redis = fixture('redis');

describe.concurrent('autoExtend keeps the lock, on every backend that declares extend', () => {
  it.for(EXTENDING)(
    '$name: autoExtend true holds it for 2.5 × expire: held as seen by another client, signal never aborted, same token',
    async (f, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const name = uniqueName('auto');
      const expire = expireFor(f);
      const held = lock(f, name, { expire, autoExtend: true });
      const other = lock(f, name);
      expect(held.renewEvery).toBeCloseTo(expire / 3);
      expect(await held.acquire(false)).toBe(true);
      const token = held.fencingToken;
      const signal = held.signal;

      const end = now() + 2.5 * expire;
      let samples = 0;
      while (now() < end) {
        expect(await other.locked(), `held at ${samples * 250} ms`).toBe(true);
        expect(signal.aborted).toBe(false);
        samples++;
        await delay(250);
      }
      expect(samples).toBeGreaterThan(10);
      expect(await other.acquire(false)).toBe(false);
      expect(held.fencingToken).toBe(token);
      await held.release(); // still this owner's
      expect(signal.aborted).toBe(false);
      expect(await other.locked()).toBe(false);
    },
  );

  it.for(EXTENDING)(
    '$name: the renewals set the TTL on the server: with autoExtend 400 it never falls far below expire',
    async (f, { expect, onTestFinished }) => {
      const { lock, client } = scope(onTestFinished);
      const expire = expireFor(f);
      const held = lock(f, uniqueName('interval'), { expire, autoExtend: 400 }, client(f));
      expect(held.renewEvery).toBe(400);
      expect(await held.acquire(false)).toBe(true);
      let lowest = Infinity;
      const end = now() + expire + 1_000;
      while (now() < end) {
        lowest = Math.min(lowest, (await f.server.ttl(held)) ?? -2);
        await delay(50);
      }
      // Without renewals it would be gone after `expire`; renewed every 400 ms (plus a second
      // where the server counts whole seconds) it stays well above half of it.
      expect(lowest).toBeGreaterThan(expire / 2);
      expect(held.signal.aborted).toBe(false);
      await held.release();
    },
  );

  it('redis: the renewals stop with the release: MONITOR sees none of the old token afterwards, and the next holder keeps its own TTL', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock, defer } = scope(onTestFinished);
    const name = uniqueName('stop');
    const held = lock(redis, name, { expire: 1_500, autoExtend: 300 });
    const monitor = await redisMonitor();
    defer(() => monitor.close());
    expect(await held.acquire(false)).toBe(true);
    const token = await redis.server.value(held);
    expect(token).toMatch(/^[0-9a-f]{32}\|\d+\|\d+\|[^|]*\|[^|]*$/);
    // A renewal runs the extend script with the token; the release script names the line's key
    // too (`<US>queue:...`). MONITOR also carries whatever another file sends to this server.
    const releases = (line: string) => line.includes(`"${token}"`) && line.includes('queue:');
    const renewals = () =>
      monitor.lines.filter((line) => line.includes(`"${token}"`) && !releases(line)).length;

    await delay(1_000);
    expect(renewals(), 'renewals seen while held').toBeGreaterThanOrEqual(2);
    await held.release();
    // MONITOR lines may trail the replies; it shows commands in the server's order, so every
    // renewal sent before the release is in once the release is.
    await waitFor(() => monitor.lines.some(releases), { what: "the release's MONITOR line" });
    const atRelease = renewals();

    const next = lock(redis, name, { expire: 3_000 });
    expect(await next.acquire(false)).toBe(true);
    const owner = await redis.server.value(next);
    await delay(1_000); // more than 3 renewal intervals of the old holder
    expect(renewals(), 'renewals after the release').toBe(atRelease);
    expect(await redis.server.value(next)).toBe(owner);
    const ttl = await redis.server.ttl(next);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(2_000); // 3000 - 1000: it was never extended
  });
});

describe('a renewal racing the release (Redis paused, so both are in flight together)', () => {
  let server: RedisServer | undefined;
  let client: Redis | undefined;

  afterAll(async () => {
    if (server?.paused) server.resume();
    client?.disconnect();
    await server?.stop();
  });

  it('does not report the released lock as lost: no signal abort, no lost event', async () => {
    server = await startRedis();
    client = new Redis(server.url);
    const held = new RedisLock(uniqueName('race'), {
      client,
      expire: 3_000,
      autoExtend: 200,
    });
    const events: LockLostEvent[] = [];
    const listener = (event: LockLostEvent) => {
      if (event.lock === held) events.push(event);
    };
    lockEvents.on('lost', listener);
    try {
      globalExpect(await held.acquire(false)).toBe(true);
      const signal = held.signal;
      await delay(50);
      server.pause();
      const released = held.release(); // sent first...
      await delay(400); // ...then the renewal due 200 ms after the acquire
      server.resume();
      await released;
      await delay(300);
      globalExpect(await redisRaw(['EXISTS', held.key], { port: server.port })).toBe(0);
      globalExpect(signal.aborted, 'the signal of a released lock').toBe(false);
      globalExpect(events).toEqual([]);
    } finally {
      lockEvents.off('lost', listener);
      if (server.paused) server.resume();
    }
  });
});

describe('autoExtend settings that cannot work fail at construction and in configure()', () => {
  afterEach(() => resetConfiguration());

  const construct = (options: Record<string, unknown>) => () =>
    new MemoryLock('x', options as { autoExtend?: boolean | number });

  it('with expire null: a RangeError naming autoExtend', () => {
    for (const autoExtend of [true, 1_000]) {
      globalExpect(construct({ expire: null, autoExtend })).toThrow(RangeError);
      globalExpect(construct({ expire: null, autoExtend })).toThrow(/Invalid option 'autoExtend'/);
    }
    globalExpect(construct({ expire: null, autoExtend: false })).not.toThrow();
  });

  it('an interval above expire / 2: RangeError; exactly expire / 2 is allowed', () => {
    globalExpect(construct({ expire: 2_000, autoExtend: 1_001 })).toThrow(RangeError);
    globalExpect(construct({ expire: 2_000, autoExtend: 1_001 })).toThrow(
      /'autoExtend': got 1001.*at most expire \/ 2 \(1000 ms\)/,
    );
    globalExpect(new MemoryLock('x', { expire: 2_000, autoExtend: 1_000 }).renewEvery).toBe(1_000);
  });

  it('0, -1, NaN, Infinity: RangeError; a string or an object: TypeError', () => {
    for (const autoExtend of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      globalExpect(construct({ autoExtend }), String(autoExtend)).toThrow(RangeError);
      globalExpect(construct({ autoExtend })).toThrow(/Invalid option 'autoExtend'/);
    }
    for (const autoExtend of ['yes', 'true', {}, null]) {
      globalExpect(construct({ autoExtend }), String(autoExtend)).toThrow(TypeError);
    }
  });

  it('the same in configure(), which then changes nothing', () => {
    const before = getConfiguration();
    const cases: {
      options: Record<string, unknown>;
      type: typeof TypeError | typeof RangeError;
    }[] = [
      { options: { expire: null, autoExtend: true }, type: RangeError },
      { options: { expire: 2_000, autoExtend: 1_001 }, type: RangeError },
      { options: { autoExtend: 0 }, type: RangeError },
      { options: { autoExtend: -1 }, type: RangeError },
      { options: { autoExtend: 'yes' }, type: TypeError },
    ];
    for (const { options, type } of cases) {
      globalExpect(() => configure(options), JSON.stringify(options)).toThrow(type);
      globalExpect(() => configure(options)).toThrow(/'autoExtend'/);
      globalExpect(getConfiguration()).toBe(before);
    }
  });

  it('configure() refuses a change that breaks the autoExtend already configured', () => {
    configure({ autoExtend: true });
    const configured = getConfiguration();
    globalExpect(() => configure({ expire: null })).toThrow(/Invalid option 'autoExtend'/);
    globalExpect(getConfiguration()).toBe(configured);
    configure({ expire: null, autoExtend: false }); // both at once is fine
    globalExpect(getConfiguration().expire).toBeNull();
  });

  it('a configured interval applies to new locks, and fails for a lock whose expire is too short for it', () => {
    configure({ autoExtend: 1_000 }); // fine with the default expire (60 s)
    globalExpect(new MemoryLock('x').renewEvery).toBe(1_000);
    globalExpect(construct({ expire: 1_500 })).toThrow(/'autoExtend': got 1000.*750 ms/);
    globalExpect(new MemoryLock('x', { expire: 1_500, autoExtend: true }).renewEvery).toBe(500);
    configure({ autoExtend: true });
    globalExpect(new MemoryLock('x', { expire: 3_000 }).renewEvery).toBe(1_000);
  });

  it.for(NOT_EXTENDING)(
    '$name (declares no extend): autoExtend throws a RangeError at construction, also when configured',
    (f) => {
      // Construction talks to no server: no client is needed.
      const make =
        (options: { autoExtend?: boolean | number } = {}) =>
        () =>
          new f.LockClass('x', { expire: 3_000, ...options });
      globalExpect(make({ autoExtend: true })).toThrow(RangeError);
      globalExpect(make({ autoExtend: 1_000 })).toThrow(
        new RegExp(`'autoExtend'.*the ${f.name} backend cannot extend a lock`),
      );
      globalExpect(make()).not.toThrow();
      globalExpect(make()().renewEvery).toBeNull();
      configure({ autoExtend: true });
      globalExpect(make()).toThrow(RangeError);
      globalExpect(make({ autoExtend: false })).not.toThrow();
      globalExpect(new RedisLock('x', { expire: 3_000 }).renewEvery).toBe(1_000);
    },
  );
});
