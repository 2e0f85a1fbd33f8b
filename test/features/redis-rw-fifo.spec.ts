/**
 * The Redis read-write lock in order of arrival, by direct grant, on a real server of its own:
 * readers next to each other in line go in together, a writer waits for everyone ahead of it and
 * everyone behind a writer waits for it (no reader starvation, no writer starvation); a newcomer
 * never jumps the line and a non-blocking acquire never queues; fencing tokens grow in holding
 * order; and each way a grant can go wrong (the waiter gave up, died, never got the message, its
 * subscriber dropped) ends with the line moving on, never with a writer next to anyone.
 */
import { LockAbortedError, LockNotHeldError, type ReadWriteLock } from 'nestjs-sherlock';
import { describe, it, type TestContext } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { delay, now } from '../support/helpers.js';
import { remainingMs } from '../support/redis-expiry.js';
import { findKey, READ_WRITE_LINE, redisOfItsOwn } from '../support/redis-own.js';

/** Far above a pushed hand-off, below the 1.8 s a waiter's first fallback poll takes at least. */
const HANDOFF_LIMIT_MS = 1_000;
const SLOW_POLLING = { retryInterval: 5_000, timeout: 20_000 };

describe('redis read-write lock: first come first served by direct grant (its own server)', () => {
  const redis = redisOfItsOwn();

  /** Managers on fresh clients, closed after the test, an inspecting client, the line's readers. */
  const setUp = (onTestFinished: TestContext['onTestFinished']) =>
    redis.setUp(onTestFinished, { expire: 30_000 }, READ_WRITE_LINE);

  it('in order of arrival: the readers at the head go in together, a writer waits for them, the readers behind it wait for the writer; newcomers never jump the line; fencing tokens grow in holding order', async ({
    expect,
    onTestFinished,
  }) => {
    const { manager, line, queued } = setUp(onTestFinished);
    const [m1, m2] = [manager(), manager()];
    const name = uniqueName('rw-order');
    const rw = (i: number): ReadWriteLock => (i % 2 === 0 ? m1 : m2).readWrite(name, SLOW_POLLING);
    const first = rw(0);
    expect(await first.write.acquire(false)).toBe(true);
    const events: string[] = [];
    const tokens = new Map<string, bigint>();
    const plan = ['r1', 'r2', 'w3', 'r4', 'r5', 'w6'];
    const sides = plan.map((label, i) => {
      const lock = rw(i + 1);
      return { label, side: label.startsWith('r') ? lock.read : lock.write };
    });
    const granted = new Map<string, Promise<void>>();
    for (const [i, { label, side }] of sides.entries()) {
      granted.set(
        label,
        side.acquire().then(() => {
          events.push(label);
          tokens.set(label, BigInt(side.fencingToken ?? -1));
        }),
      );
      await queued(name, i + 1);
    }
    expect((await line(name)).map((e) => e.side).join('')).toBe('rrwrrw');
    const newcomer = rw(9);
    expect(await newcomer.read.acquire(false), 'a writer holds').toBe(false);

    await first.write.release();
    await granted.get('r1');
    await granted.get('r2');
    // Granted by one script; their messages may arrive in either order.
    expect(events.slice().sort(), 'the two readers at the head went in together').toEqual([
      'r1',
      'r2',
    ]);
    const side = (label: string) => sides.find((s) => s.label === label)?.side;
    expect(side('r1')?.isAcquired && side('r2')?.isAcquired).toBe(true);
    expect(await first.state()).toEqual({ readers: 2, writer: false, writerWaiting: true });
    // Readers hold, but a writer is in line: a newcomer reader does not jump it, and a
    // non-blocking acquire does not queue.
    expect(await newcomer.read.acquire(false)).toBe(false);
    expect(await line(name)).toHaveLength(4);

    await side('r1')?.release();
    expect(events, 'the writer waits for every reader ahead of it').toHaveLength(2);
    await side('r2')?.release();
    await granted.get('w3');
    expect(events[2]).toBe('w3');
    await side('w3')?.release();
    await granted.get('r4');
    await granted.get('r5');
    expect(events.slice(3).sort()).toEqual(['r4', 'r5']);
    expect(await newcomer.read.acquire(false), 'the last writer waits behind them').toBe(false);
    await side('r4')?.release();
    await side('r5')?.release();
    await granted.get('w6');
    expect(events[5]).toBe('w6');
    expect(await line(name), 'the line is empty').toHaveLength(0);
    // Fencing tokens in holding order (the readers granted together in either order).
    const token = (label: string) => tokens.get(label) ?? -1n;
    const phases = [['r1', 'r2'], ['w3'], ['r4', 'r5'], ['w6']];
    for (let i = 1; i < phases.length; i++) {
      for (const before of phases[i - 1] ?? []) {
        for (const after of phases[i] ?? []) {
          expect(token(after), `${after} after ${before}`).toBeGreaterThan(token(before));
        }
      }
    }
    await side('w6')?.release();
    // Control: nobody in line, nobody holding: the newcomer gets in.
    expect(await newcomer.read.acquire(false)).toBe(true);
    await newcomer.read.release();
  });

  it("uncontended (nobody in line): readers share, a writer goes in only when nobody holds; a holding that expired keeps nobody out and is not given back; each side's set expires with its latest holding, never earlier", async ({
    expect,
    onTestFinished,
  }) => {
    const { manager, inspector } = setUp(onTestFinished);
    const m = manager();
    const name = uniqueName('rw-alone');
    const rw = (expire: number | null) => m.readWrite(name, { expire });
    const ttlOf = async (side: 'rwr' | 'rww') => {
      const key = await findKey(inspector, `*${side}:*${name}`);
      return key === undefined ? -2 : inspector.pttl(key);
    };
    const members = async (side: 'rwr' | 'rww') => {
      const key = await findKey(inspector, `*${side}:*${name}`);
      return key === undefined ? [] : inspector.zrange(key, '0', '-1');
    };
    const [r1, r2, r3, w] = [rw(10_000), rw(40_000), rw(null), rw(30_000)];
    expect(await r1.read.acquire(false)).toBe(true);
    const first = await ttlOf('rwr');
    expect(first, "a new set: its holding's expiry").toBeGreaterThan(5_000);
    expect(first).toBeLessThanOrEqual(10_000);
    expect(await r2.read.acquire(false), 'readers share').toBe(true);
    expect(await ttlOf('rwr'), 'moved later by a later holding').toBeGreaterThan(30_000);
    expect(await w.write.acquire(false), 'a writer waits for the readers').toBe(false);
    expect(await r3.read.acquire(false)).toBe(true);
    expect(await ttlOf('rwr'), 'a holding without expiry: no expiry').toBe(-1);
    await r3.read.release();
    const left = await ttlOf('rwr');
    expect(left, 'given back: the latest holding left (r2, 40 s)').toBeGreaterThan(30_000);
    expect(left).toBeLessThanOrEqual(40_000);
    await r1.read.release();
    await r2.read.release();
    expect(await members('rwr')).toEqual([]);

    // A reader whose holding expired, still a member (a longer one kept the set), keeps nobody
    // out, and its release is refused.
    const [long, gone] = [rw(30_000), rw(300)];
    expect(await long.read.acquire(false)).toBe(true);
    expect(await gone.read.acquire(false)).toBe(true);
    expect(await w.write.acquire(false), 'a writer waits for the readers').toBe(false);
    await delay(700);
    await long.read.release();
    expect(await members('rwr'), 'the expired reader, still a member').toHaveLength(1);
    expect(await w.write.acquire(false), 'the expired reader keeps nobody out').toBe(true);
    expect(await ttlOf('rww')).toBeGreaterThan(20_000);
    expect(await r1.read.acquire(false), 'a reader waits for the writer').toBe(false);
    await expect(gone.read.release()).rejects.toBeInstanceOf(LockNotHeldError);
    expect(await members('rwr')).toEqual([]);
    await w.write.release();
  });

  it('a writer aborted at the moment it is granted passes the lock on to the readers behind it at once; one that timed out has left the line', async ({
    expect,
    onTestFinished,
  }) => {
    const { manager, queued, line } = setUp(onTestFinished);
    for (const way of ['abort', 'timeout'] as const) {
      const name = uniqueName(`rw-quit-${way}`);
      const holder = manager().readWrite(name);
      expect(await holder.read.acquire(false)).toBe(true);
      const controller = new AbortController();
      const quitter = manager().readWrite(name, {
        ...SLOW_POLLING,
        expire: 60_000,
        ...(way === 'abort' ? {} : { timeout: 1_500 }),
      });
      const outcome = quitter.write.acquire({ signal: controller.signal }).then(
        (ok) => ({ ok, err: undefined as unknown }),
        (err: unknown) => ({ ok: false, err }),
      );
      await queued(name, 1);
      const next = manager().readWrite(name, SLOW_POLLING);
      const acquired = next.read.acquire().then(() => now());
      await queued(name, 2);
      if (way === 'abort') {
        // Released and aborted in the same tick: the grant message cannot have arrived yet.
        const released = holder.read.release();
        controller.abort();
        await released;
        expect((await outcome).err).toBeInstanceOf(LockAbortedError);
      } else {
        // It left the line: the reader behind it joins the reader that holds, at once.
        expect((await outcome).err).toBeDefined();
        const leftAt = now();
        expect((await acquired) - leftAt).toBeLessThan(HANDOFF_LIMIT_MS);
        expect(await line(name), 'it left the line').toHaveLength(0);
        expect(await next.state()).toEqual({ readers: 2, writer: false, writerWaiting: false });
        await holder.read.release();
      }
      const releasedAt = now();
      const gap = (await acquired) - releasedAt;
      expect(gap, "passed on at once, not left to the writer's 60 s expiry").toBeLessThan(
        HANDOFF_LIMIT_MS,
      );
      expect(quitter.write.isAcquired).toBe(false);
      expect(next.read.isAcquired).toBe(true);
      expect(await next.state()).toEqual({ readers: 1, writer: false, writerWaiting: false });
      await next.read.release();
    }
  });

  it('a dead waiter (nobody listens) is skipped at once; a gone one whose process lives holds the line for its own expire only', async ({
    expect,
    onTestFinished,
  }) => {
    const { manager, inspector, line, queued } = setUp(onTestFinished);
    const name = uniqueName('rw-ghost');
    const holder = manager().readWrite(name);
    expect(await holder.write.acquire(false)).toBe(true);
    const waiter = manager().readWrite(name, SLOW_POLLING);
    const acquired = waiter.write.acquire().then(() => now());
    await queued(name, 1);
    const [live] = await line(name);
    // Ahead of it: a dead process's writer, then a writer whose process lives (its channel is
    // live) but which is gone itself and asked for a 1.5 s expiry.
    await inspector.zadd(live?.key ?? '', 1, `w p ${live?.channel} ghost ghost-token 1500`);
    await inspector.zadd(live?.key ?? '', 0, 'w p sherlock:wake:dead-process 0 dead-token 30000');
    await holder.write.release();
    const releasedAt = now();
    const writerKey = (await inspector.keys(`*rww:*${name}`))[0] ?? '';
    expect(await inspector.zrange(writerKey, '0', '-1'), 'the dead one skipped').toEqual([
      'ghost-token',
    ]);
    const gap = (await acquired) - releasedAt;
    expect(gap, 'not before the ghost expired').toBeGreaterThan(1_000);
    expect(gap, "within the ghost's expiry and a fallback poll or two").toBeLessThan(12_000);
    expect(waiter.write.isAcquired).toBe(true);
    await waiter.write.release();
  });

  it('a lost grant message: the reader finds it by its fallback poll, with a new, higher fencing token', async ({
    expect,
    onTestFinished,
  }) => {
    const { manager, inspector, line, queued } = setUp(onTestFinished);
    const name = uniqueName('rw-lost');
    const holder = manager().readWrite(name);
    expect(await holder.write.acquire(false)).toBe(true);
    const waiter = manager().readWrite(name, SLOW_POLLING);
    const acquired = waiter.read.acquire().then(() => now());
    await queued(name, 1);
    const [entry] = await line(name);
    // The same waiter, but the message goes to an id nobody has: as if lost on the way.
    await inspector.zrem(entry?.key ?? '', entry?.raw ?? '');
    const lost = `r p ${entry?.channel} lost ${entry?.token} 30000`;
    await inspector.zadd(entry?.key ?? '', 0, lost);
    await holder.write.release();
    const releasedAt = now();
    expect(await holder.state()).toMatchObject({ readers: 1 });
    const acquiredAt = await acquired;
    const left = await remainingMs(inspector, `*rwr:*${name}`, entry?.token ?? '');
    const gap = acquiredAt - releasedAt;
    expect(gap, 'found by the fallback poll, not by a message').toBeGreaterThan(1_500);
    // The reader counts its 30 s from the poll that found the grant: the server must too (the
    // grant's 30 s started `gap` earlier). Margin: 1 s for the poll's trip.
    expect(left, 'the expiry starts again at the poll').toBeGreaterThan(
      30_000 - 1_000 - (now() - acquiredAt),
    );
    expect(BigInt(waiter.read.fencingToken ?? -1)).toBeGreaterThan(
      BigInt(holder.write.fencingToken ?? -1) + 1n,
    );
    expect(await holder.write.acquire(false)).toBe(false);
    await waiter.read.release();
    expect(await holder.write.acquire(false)).toBe(true);
    await holder.write.release();
  });

  it('the subscriber connection is killed while the release grants: the grant is taken back, and the reconnect makes the waiter try again at once', async ({
    expect,
    onTestFinished,
  }) => {
    const { manager, inspector, queued } = setUp(onTestFinished);
    const name = uniqueName('rw-reconnect');
    const holder = manager().readWrite(name);
    expect(await holder.read.acquire(false)).toBe(true);
    const waiter = manager().readWrite(name, SLOW_POLLING);
    const acquired = waiter.write.acquire().then(() => now());
    await queued(name, 1);
    const killed = await inspector.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    expect(Number(killed)).toBeGreaterThan(0);
    await holder.read.release();
    const releasedAt = now();
    const gap = (await acquired) - releasedAt;
    expect(gap, 'woken by the reconnect, not by its 2 s poll').toBeLessThan(HANDOFF_LIMIT_MS);
    expect(waiter.write.isAcquired).toBe(true);
    await waiter.write.release();
  });
});
