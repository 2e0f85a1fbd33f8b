/**
 * The read-write lock contract. A backend that declares `capabilities.readWrite` gets the whole
 * of it (many readers or one writer, a waiting writer keeps new readers out, pushed wake-ups,
 * timeout, abort, a dead holder's holding dropped by the server, fencing, extend and autoExtend,
 * `using`, `await using`, apart from a lock and a semaphore of the same name); any other backend
 * refuses a read-write lock with an `UnsupportedFeatureError` naming itself and why. "Another
 * process" is a second manager on a client of its own (for a backend that is not cross-process,
 * the same client).
 */
import {
  LockAbortedError,
  LockManager,
  LockNotHeldError,
  LockTimeoutError,
  ReadWriteLock,
  ReadWriteSide,
} from '../../sherlock.js';
import { expect } from '../expect.js';
import {
  delay,
  expectStrictlyIncreasing,
  lifetime,
  rejectsWith,
  SLACK_MS,
  timed,
  uniqueName,
  waitFor,
} from '../helpers.js';
import type { Runner, SubjectInfo } from '../subject.js';
import {
  HANDOFF_LIMIT_MS,
  IN_LINE_MS,
  POLL_NEVER,
  refusalContract,
  useTwoManagers,
} from './shared.js';

export function readWriteContract(runner: Runner, fixture: SubjectInfo): void {
  const { capabilities, subject } = fixture;
  if (!capabilities.readWrite) {
    refusalContract(runner, fixture, {
      feature: 'readWrite',
      called: 'a read-write lock',
      title:
        'manager.readWrite() and new ReadWriteLock() throw an UnsupportedFeatureError naming the backend and why, sending nothing',
      viaManager: (manager, name) => manager.readWrite(name),
      direct: (name) => new ReadWriteLock(name),
    });
    return;
  }
  const { it } = runner;
  const managers = useTwoManagers(runner, fixture);

  /** `n` read-write lock objects of `name`, alternating between the two managers. */
  const rws = (name: string, n: number, options = {}) =>
    Array.from({ length: n }, (_, i) =>
      (i % 2 === 0 ? managers.main : managers.other).readWrite(name, options),
    );

  it('is a ReadWriteLock with a read and a write side of the backend, holding nothing yet', async () => {
    const name = uniqueName('rw');
    const rw = managers.main.readWrite(name);
    expect(rw).toBeInstanceOf(ReadWriteLock);
    expect(rw.name).toBe(name);
    expect(rw.key).toBe(name);
    for (const [side, mode] of [
      [rw.read, 'read'],
      [rw.write, 'write'],
    ] as const) {
      expect(side).toBeInstanceOf(ReadWriteSide);
      expect(side.mode).toBe(mode);
      expect(side.name).toBe(name);
      expect(side.backend).toBe(fixture.definition);
      expect(side.isAcquired).toBe(false);
      expect(side.fencingToken).toBeUndefined();
      expect(side.signal.aborted).toBe(true);
      expect(await side.locked()).toBe(false);
    }
    expect(await rw.state()).toEqual({ readers: 0, writer: false, writerWaiting: false });
    expect(managers.main.readWrite(name, { namespace: 'ns' }).key).toBe(
      `ns${fixture.keySeparator}${name}`,
    );
  });

  it('many readers hold together; a writer is refused while they do, and readers while a writer holds', async () => {
    const name = uniqueName('rw-basic');
    const [a, b, c] = rws(name, 3);
    if (!a || !b || !c) throw new Error('three');
    expect(await a.read.acquire(false)).toBe(true);
    expect(await b.read.acquire(false)).toBe(true);
    expect(await c.state()).toEqual({ readers: 2, writer: false, writerWaiting: false });
    expect(await c.read.locked()).toBe(false);
    expect(await c.write.locked()).toBe(true);
    expect(await c.write.acquire(false)).toBe(false);
    expect(c.write.isAcquired).toBe(false);
    await a.read.release();
    expect(await c.write.acquire(false)).toBe(false);
    await b.read.release();
    expect(await c.write.acquire(false)).toBe(true);
    expect(await a.state()).toEqual({ readers: 0, writer: true, writerWaiting: false });
    expect(await a.read.locked()).toBe(true);
    expect(await a.read.acquire(false)).toBe(false);
    expect(await b.write.acquire(false)).toBe(false);
    await c.write.release();
    expect(await a.read.acquire(false)).toBe(true);
    await a.read.release();
    expect(await a.state()).toEqual({ readers: 0, writer: false, writerWaiting: false });
  });

  it('never a writer next to anyone: 6 readers and 3 writers, 3 rounds each, concurrently; readers did overlap', async () => {
    const name = uniqueName('rw-excl');
    const locks = rws(name, 9, { timeout: 60_000 });
    let readers = 0;
    let writers = 0;
    let maxReaders = 0;
    const violations: string[] = [];
    await Promise.all(
      locks.map(async (rw, i) => {
        const writing = i % 3 === 2;
        for (let round = 0; round < 3; round++) {
          if (writing) {
            await rw.write.using(async () => {
              writers += 1;
              if (writers > 1 || readers > 0) violations.push(`w${i}: ${writers}w ${readers}r`);
              await delay(30);
              writers -= 1;
            });
          } else {
            await rw.read.using(async () => {
              readers += 1;
              maxReaders = Math.max(maxReaders, readers);
              if (writers > 0) violations.push(`r${i}: ${writers}w ${readers}r`);
              await delay(60);
              readers -= 1;
            });
          }
        }
      }),
    );
    expect(violations).toEqual([]);
    expect(maxReaders).toBeGreaterThan(1);
    expect(await locks[0]?.state()).toEqual({ readers: 0, writer: false, writerWaiting: false });
  });

  it(`writers never starve: a waiting writer keeps new readers out, gets the lock when the readers leave (woken within ${HANDOFF_LIMIT_MS} ms), then the waiting reader follows`, async () => {
    expect(capabilities.handOff).toBe('push');
    const name = uniqueName('rw-fair');
    const [r1, r2, w, late, probe] = rws(name, 5, { ...POLL_NEVER, timeout: 20_000 });
    if (!r1 || !r2 || !w || !late || !probe) throw new Error('five');
    expect(await r1.read.acquire(false)).toBe(true);
    expect(await r2.read.acquire(false)).toBe(true);
    const order: string[] = [];
    const writing = w.write.acquire().then(() => order.push('writer'));
    // In line once the server says so (a cold client connects its listener first).
    await waitFor(async () => (await probe.state()).writerWaiting, { what: 'the writer in line' });
    expect(await probe.state()).toMatchObject({ readers: 2, writerWaiting: true });
    // A reader arriving now is refused (non-blocking) or waits (blocking).
    expect(await probe.read.acquire(false)).toBe(false);
    expect(await probe.read.locked()).toBe(true);
    const reading = late.read.acquire().then(() => order.push('reader'));
    await delay(IN_LINE_MS);
    expect(order).toEqual([]);

    await r1.read.release();
    await delay(IN_LINE_MS);
    expect(order, 'one reader still holds').toEqual([]);
    await r2.read.release();
    const first = await timed(() => waitFor(() => order.length === 1, { timeout: SLACK_MS }));
    expect(first.ms).toBeLessThan(HANDOFF_LIMIT_MS);
    expect(order).toEqual(['writer']);
    await delay(IN_LINE_MS);
    expect(order, 'the reader waits for the writer').toEqual(['writer']);

    await w.write.release();
    const second = await timed(() => waitFor(() => order.length === 2, { timeout: SLACK_MS }));
    expect(second.ms).toBeLessThan(HANDOFF_LIMIT_MS);
    expect(order).toEqual(['writer', 'reader']);
    await Promise.all([writing, reading]);
    expect(await probe.state()).toEqual({ readers: 1, writer: false, writerWaiting: false });
  });

  it('a writer that gives up waiting (timeout) stops keeping readers out at once', async () => {
    const name = uniqueName('rw-giveup');
    const [reader, writer, newcomer] = rws(name, 3);
    if (!reader || !writer || !newcomer) throw new Error('three');
    expect(await reader.read.acquire(false)).toBe(true);
    const { error } = await rejectsWith(LockTimeoutError, () =>
      writer.write.acquire({ timeout: 500 }),
    );
    expect(error.lockName).toBe(name);
    expect(writer.write.isAcquired).toBe(false);
    await waitFor(async () => !(await newcomer.state()).writerWaiting, {
      timeout: SLACK_MS,
      what: 'the writer to leave the line',
    });
    expect(await newcomer.read.acquire(false)).toBe(true);
    expect(await reader.state()).toMatchObject({ readers: 2, writer: false });
  });

  it('a reader waiting behind a writer is cancelled by its signal with LockAbortedError, holding nothing', async () => {
    const name = uniqueName('rw-abort');
    const [holder, waiter] = rws(name, 2);
    if (!holder || !waiter) throw new Error('two');
    expect(await holder.write.acquire(false)).toBe(true);
    const controller = new AbortController();
    const reason = new Error('stop waiting');
    setTimeout(() => controller.abort(reason), 300);
    const { error, ms } = await rejectsWith(LockAbortedError, () =>
      waiter.read.acquire({ timeout: 30_000, signal: controller.signal }),
    );
    expect(error.cause).toBe(reason);
    expect(ms).toBeLessThan(300 + SLACK_MS);
    expect(waiter.read.isAcquired).toBe(false);
    await holder.write.release();
    expect(await managers.other.readWrite(name).write.acquire(false)).toBe(true);
  });

  it('a writer that dies (never releases) loses the lock at its expiry, by the server: a waiting reader gets it, the dead writer cannot release', async () => {
    const name = uniqueName('rw-dead');
    const expire = fixture.shortExpire;
    const dead = managers.other.readWrite(name, { expire });
    expect(await dead.write.acquire(false)).toBe(true);
    const deadToken = dead.write.fencingToken;
    const reader = managers.main.readWrite(name, { timeout: expire + 20_000, expire: 30_000 });
    const { ms } = await timed(() => reader.read.acquire());
    expect(reader.read.isAcquired).toBe(true);
    expect(ms).toBeGreaterThanOrEqual(lifetime(fixture, expire) / 2);
    expect(ms).toBeLessThan(expire + SLACK_MS);
    expect(BigInt(reader.read.fencingToken ?? -1)).toBeGreaterThan(BigInt(deadToken ?? -1));
    expect(dead.write.signal.aborted).toBe(true);
    const { error } = await rejectsWith(LockNotHeldError, () => dead.write.release());
    expect(error.reason).toBe('not-owned');
    expect(await reader.state()).toMatchObject({ readers: 1, writer: false });
  });

  it('readers that die free the lock at their expiry, with no acquire to trigger it', async () => {
    const name = uniqueName('rw-expire');
    const expire = fixture.shortExpire;
    const locks = rws(name, 2, { expire });
    for (const rw of locks) expect(await rw.read.acquire(false)).toBe(true);
    expect(await managers.main.readWrite(name).state()).toMatchObject({ readers: 2 });
    for (const rw of locks) rw.read.abandon();
    await waitFor(async () => (await managers.main.readWrite(name).state()).readers === 0, {
      timeout: expire + SLACK_MS,
      what: 'the expired readers to be dropped',
    });
    expect(await managers.main.readWrite(name).write.acquire(false)).toBe(true);
  });

  it('release by a non-holder rejects with LockNotHeldError; a reader cannot release the writer or the other way round', async () => {
    const name = uniqueName('rw-nonholder');
    const [holder, stranger] = rws(name, 2);
    if (!holder || !stranger) throw new Error('two');
    expect(await holder.read.acquire(false)).toBe(true);
    expect((await rejectsWith(LockNotHeldError, () => stranger.read.release())).error.reason).toBe(
      'not-acquired',
    );
    expect((await rejectsWith(LockNotHeldError, () => holder.write.release())).error.reason).toBe(
      'not-acquired',
    );
    expect(
      (await rejectsWith(LockNotHeldError, () => stranger.write.extend(10_000))).error.operation,
    ).toBe('extend');
    expect(await holder.state()).toMatchObject({ readers: 1 });
    await holder.read.release();
    expect((await rejectsWith(LockNotHeldError, () => holder.read.release())).error.reason).toBe(
      'not-acquired',
    );
  });

  it('fencing: every holding, read or write, gets a token above those before it; concurrent readers get distinct ones', async () => {
    expect(capabilities.fencing).toBe(true);
    const name = uniqueName('rw-fence');
    const locks = rws(name, 3);
    const sequential: (string | undefined)[] = [];
    for (let round = 0; round < 2; round++) {
      for (const rw of locks) {
        for (const side of [rw.read, rw.write]) {
          expect(await side.acquire(false)).toBe(true);
          sequential.push(side.fencingToken);
          await side.release();
          expect(side.fencingToken).toBeUndefined();
        }
      }
    }
    expectStrictlyIncreasing(sequential);
    const [a, b] = locks;
    if (!a || !b) throw new Error('two');
    expect(await a.read.acquire(false)).toBe(true);
    expect(await b.read.acquire(false)).toBe(true);
    expect(a.read.fencingToken).not.toBe(b.read.fencingToken);
    expectStrictlyIncreasing([sequential.at(-1), a.read.fencingToken, b.read.fencingToken]);
  });

  it('extend(30000) keeps a holding past its expire, on either side; autoExtend keeps a writer for 2 expiries', async () => {
    expect(capabilities.extend).toBe(true);
    const name = uniqueName('rw-extend');
    const expire = fixture.shortExpire;
    // The two halves wait on names of their own, side by side.
    const extended = async () => {
      const reader = managers.main.readWrite(`${name}-r`, { expire });
      expect(await reader.read.acquire(false)).toBe(true);
      await reader.read.extend(30_000);
      await delay(expire + 500);
      expect(reader.read.signal.aborted).toBe(false);
      expect(await reader.state()).toMatchObject({ readers: 1 });
      expect(await managers.other.readWrite(`${name}-r`).write.acquire(false)).toBe(false);
      await reader.read.release();
    };
    const renewed = async () => {
      const writer = managers.main.readWrite(`${name}-w`, {
        expire: 2 * expire,
        autoExtend: true,
      });
      expect(writer.write.renewEvery).toBe((2 * expire) / 3);
      expect(await writer.write.acquire(false)).toBe(true);
      await delay(2 * 2 * expire);
      expect(writer.write.isAcquired).toBe(true);
      expect(writer.write.signal.aborted).toBe(false);
      expect(await managers.other.readWrite(`${name}-w`).read.acquire(false)).toBe(false);
      await writer.write.release();
      expect(await writer.state()).toEqual({ readers: 0, writer: false, writerWaiting: false });
    };
    await Promise.all([extended(), renewed()]);
  });

  it('using() and await using release; manager.close() gives back what is still held', async () => {
    const name = uniqueName('rw-using');
    const rw = managers.main.readWrite(name);
    const result = await rw.write.using(async (held) => {
      expect(held).toBe(rw.write);
      expect(held.signal.aborted).toBe(false);
      expect(await rw.state()).toMatchObject({ writer: true });
      return 'done';
    });
    expect(result).toBe('done');
    expect(await rw.state()).toMatchObject({ writer: false });
    {
      await rw.read.acquire();
      await using _ = rw.read;
      expect(await rw.state()).toMatchObject({ readers: 1 });
    }
    expect(await rw.state()).toMatchObject({ readers: 0 });

    const client = capabilities.crossProcess ? subject.createClient() : managers.main.client;
    try {
      const closing = new LockManager({ backend: fixture.definition, client });
      const kept = closing.readWrite(name);
      expect(await kept.write.acquire(false)).toBe(true);
      expect(closing.held()).toEqual([kept.write]);
      const report = await closing.close();
      expect(report.released).toEqual([name]);
      expect(await rw.state()).toMatchObject({ writer: false });
    } finally {
      if (capabilities.crossProcess) await subject.closeClient(client);
    }
  });

  it('a read-write lock, a lock and a semaphore of the same name are apart', async () => {
    const name = uniqueName('rw-apart');
    const lock = managers.main.lock(name);
    const sem = managers.main.semaphore(name, 1);
    expect(await lock.acquire(false)).toBe(true);
    expect(await sem.acquire(false)).toBe(true);
    const rw = managers.other.readWrite(name);
    expect(await rw.write.locked()).toBe(false);
    expect(await rw.write.acquire(false)).toBe(true);
    expect(await lock.locked()).toBe(true);
    expect(await sem.count()).toBe(1);
    await rw.write.release();
    await lock.release();
    await sem.release();
    expect(await rw.state()).toEqual({ readers: 0, writer: false, writerWaiting: false });
  });
}
