/**
 * The multi-lock contract: `manager.lockAll(names)`. All or none (a member held elsewhere:
 * non-blocking resolves false, blocking times out, and either way nothing is held); callers taking
 * overlapping sets in opposite orders never deadlock and never hold a name together; one timeout
 * for the whole set; abort; release of all; the signal aborts when a member is lost; extend of
 * all; fencing tokens per member.
 */
import {
  LockAbortedError,
  LockError,
  type LockLostError,
  LockManager,
  LockTimeoutError,
} from '../../sherlock.js';
import { expect } from '../expect.js';
import {
  abortTime,
  delay,
  expectLost,
  expectStrictlyIncreasing,
  now,
  rejectionOf,
  rejectsWith,
  SLACK_MS,
  timed,
  uniqueName,
} from '../helpers.js';
import type { Runner, SubjectInfo } from '../subject.js';

/** The expire of the locks below unless a test sets its own. */
const EXPIRE = 20_000;

/** Two managers on one backend, each with its own client ("two processes"), closed afterwards. */
function useManagers(runner: Runner, fixture: SubjectInfo) {
  const { subject } = fixture;
  const clients: object[] = [];
  const managers: LockManager[] = [];
  runner.beforeAll(() => {
    const client = subject.createClient();
    const other = fixture.capabilities.crossProcess ? subject.createClient() : client;
    clients.push(...new Set([client, other]));
    for (const each of [client, other]) {
      managers.push(
        new LockManager({
          backend: fixture.definition,
          client: each,
          expire: EXPIRE,
          retryInterval: 20,
        }),
      );
    }
  });
  runner.afterAll(async () => {
    await Promise.allSettled(managers.map((manager) => manager.close()));
    for (const client of clients) await subject.closeClient(client);
  });
  const at = (i: number): LockManager => {
    const manager = managers[i];
    if (!manager) throw new Error('the managers are made in beforeAll');
    return manager;
  };
  return {
    get mine() {
      return at(0);
    },
    get other() {
      return at(1);
    },
  };
}

export function multiLockContract(runner: Runner, fixture: SubjectInfo): void {
  const { describe, it } = runner;
  const { server } = fixture.subject;
  const managers = useManagers(runner, fixture);
  /** Fresh names for one test, `count` of them (prefixed so that their order is a, b, c...). */
  const namesFor = (count: number): string[] => {
    const base = uniqueName('multi');
    return Array.from({ length: count }, (_, i) => `${base}-${String.fromCharCode(97 + i)}`);
  };
  /** Takes `name` on the other manager (asserts it got it). */
  const holdElsewhere = async (name: string) => {
    const lock = managers.other.lock(name);
    expect(await lock.acquire(false), `the other manager takes '${name}'`).toBe(true);
    return lock;
  };
  /** Which of `names` anyone holds, as the other manager sees them. */
  const heldOf = async (names: readonly string[]) => {
    const held = await Promise.all(names.map((name) => managers.other.lock(name).locked()));
    return names.filter((_, i) => held[i]);
  };

  describe('all or none', () => {
    it('non-blocking: one member held elsewhere resolves false and holds none; the others are free afterwards', async () => {
      const [a, b, c] = namesFor(3) as [string, string, string];
      const holder = await holdElsewhere(b);
      const all = managers.mine.lockAll([c, b, a]);
      expect(await all.acquire(false)).toBe(false);
      expect(all.isAcquired).toBe(false);
      expect(all.locks.every((lock) => !lock.isAcquired)).toBe(true);
      expect(await heldOf([a, b, c])).toEqual([b]);
      // The others are free: another caller takes them at once.
      const rest = managers.other.lockAll([a, c]);
      expect(await rest.acquire(false)).toBe(true);
      await rest.release();
      await holder.release();
      // ...and once b is free, the whole set.
      expect(await all.acquire(false)).toBe(true);
      expect(await heldOf([a, b, c])).toEqual([a, b, c]);
      await all.release();
    });

    it('blocking: one member held elsewhere times out with LockTimeoutError naming it, and holds none', async () => {
      const [a, b, c] = namesFor(3) as [string, string, string];
      const holder = await holdElsewhere(b);
      const all = managers.mine.lockAll([a, b, c], { timeout: 1_000 });
      const { error, ms } = await rejectsWith(LockTimeoutError, () => all.acquire());
      expect(error.lockName).toBe([a, b, c].join(', '));
      expect(error.member).toBe(b);
      expect(error.timeout).toBe(1_000);
      expect(ms).toBeGreaterThanOrEqual(950);
      expect(ms).toBeLessThan(2_000 + SLACK_MS);
      expect(all.isAcquired).toBe(false);
      expect(await heldOf([a, b, c])).toEqual([b]);
      await holder.release();
    });
  });

  it('one timeout for the whole set: members freed late do not each get a timeout of their own', async () => {
    const timeout = 2_000;
    const [a, b, c] = namesFor(3) as [string, string, string];
    // a is freed at 0.9 × timeout, b at 1.8 ×, c never. With a timeout per member the acquire
    // would get a, then b, and give up on c at about 2.8 × timeout; sharing one, it gives up on b
    // at 1 × timeout.
    const holders = await Promise.all([a, b, c].map(holdElsewhere));
    const freeing = [0.9, 1.8].map((factor, i) =>
      delay(timeout * factor).then(() => holders[i]?.release()),
    );
    const all = managers.mine.lockAll([a, b, c], { timeout });
    const { error, ms } = await rejectsWith(LockTimeoutError, () => all.acquire());
    expect(error.member).toBe(b);
    expect(ms).toBeGreaterThanOrEqual(timeout - 50);
    expect(ms).toBeLessThan(2 * timeout);
    expect(all.locks.every((lock) => !lock.isAcquired)).toBe(true);
    await Promise.all(freeing);
    expect(await heldOf([a, b, c])).toEqual([c]);
    await holders[2]?.release();
  });

  it('callers taking overlapping sets in opposite orders never deadlock and never hold a name together', async () => {
    const names = namesFor(4);
    const [a, b, c, d] = names as [string, string, string, string];
    const sets = [
      [a, b, c],
      [c, b, a],
      [b, d],
      [d, a],
      [d, c, b, a],
      [c, a],
    ];
    const ITERATIONS = 6;
    const holders = new Map(names.map((name) => [name, 0]));
    const overlaps: string[] = [];
    let sections = 0;
    await Promise.all(
      sets.map(async (set, i) => {
        const manager = i % 2 === 0 ? managers.mine : managers.other;
        for (let round = 0; round < ITERATIONS; round++) {
          const all = manager.lockAll(set, { timeout: 60_000 });
          await all.using(async () => {
            for (const name of all.names) {
              const count = (holders.get(name) ?? 0) + 1;
              holders.set(name, count);
              if (count > 1)
                overlaps.push(`${name} held ${count} times (set ${i}, round ${round})`);
            }
            await delay(3);
            for (const name of all.names) holders.set(name, (holders.get(name) ?? 1) - 1);
            sections++;
          });
        }
      }),
    );
    expect(overlaps).toEqual([]);
    expect(sections).toBe(sets.length * ITERATIONS);
    expect(await heldOf(names)).toEqual([]);
  });

  it('abort: a waiting acquire rejects with LockAbortedError and holds none', async () => {
    const [a, b] = namesFor(2) as [string, string];
    const holder = await holdElsewhere(b);
    const controller = new AbortController();
    const all = managers.mine.lockAll([a, b], { timeout: 30_000 });
    setTimeout(() => controller.abort(new Error('the caller gave up')), 300);
    const { error, ms } = await rejectsWith(LockAbortedError, () =>
      all.acquire({ signal: controller.signal }),
    );
    expect(error.lockName).toBe(`${a}, ${b}`);
    expect((error.cause as Error).message).toBe('the caller gave up');
    expect(ms).toBeLessThan(300 + SLACK_MS);
    expect(await heldOf([a, b])).toEqual([b]);
    await holder.release();
  });

  it('release() releases every member; the signal stays un-aborted', async () => {
    const names = namesFor(3);
    const all = managers.mine.lockAll(names);
    expect(await all.acquire()).toBe(true);
    expect(all.isAcquired).toBe(true);
    expect(await heldOf(names)).toEqual(names);
    const signal = all.signal;
    await all.release();
    expect(all.isAcquired).toBe(false);
    expect(signal.aborted).toBe(false);
    expect(await heldOf(names)).toEqual([]);
  });

  it(`the signal aborts when a member is lost: expire ${fixture.shortExpire} ms, no renewal`, async () => {
    const names = namesFor(2);
    const all = managers.mine.lockAll(names, { expire: fixture.shortExpire });
    expect(await all.acquire()).toBe(true);
    const start = now();
    const abortedAt = await abortTime(all.signal);
    expect(abortedAt - start).toBeLessThan(fixture.shortExpire);
    expectLost(all.signal, ['unconfirmed']);
    expect(names).toContain((all.signal.reason as LockLostError).lockName);
    await all.release().catch(() => undefined);
  });

  if (fixture.capabilities.extend && server) {
    // Needs the server inspector: the key is deleted behind the lock's back.
    it('the signal aborts (taken) when a member’s key is deleted behind its back and taken by another', async () => {
      const [a, b] = namesFor(2) as [string, string];
      const all = managers.mine.lockAll([a, b], { expire: 5_000, autoExtend: 300 });
      expect(await all.acquire()).toBe(true);
      const member = all.locks[1];
      if (!member) throw new Error('no second member');
      await server.remove(member);
      const thief = managers.other.lock(b);
      expect(await thief.acquire(false)).toBe(true);
      const start = now();
      await abortTime(all.signal);
      expect(now() - start).toBeLessThan(1_500 + SLACK_MS);
      expectLost(all.signal, ['taken']);
      expect((all.signal.reason as LockLostError).lockName).toBe(b);
      // The others are still held until release(), which reports the lost one.
      expect(await heldOf([a])).toEqual([a]);
      const released = await rejectionOf(all.release());
      expect(released.message).toMatch(/Could not release 1 of the 2 locks/);
      expect(await thief.locked()).toBe(true);
      await thief.release();
    });
  }

  if (fixture.capabilities.extend) {
    it('extend() extends every member past its first expiry', async () => {
      const names = namesFor(2);
      const all = managers.mine.lockAll(names, { expire: fixture.shortExpire });
      expect(await all.acquire()).toBe(true);
      await all.extend(fixture.shortExpire * 4);
      await delay(fixture.shortExpire + 500);
      expect(await heldOf(names)).toEqual(names);
      expect(all.signal.aborted).toBe(false);
      await all.release();
    });
  } else {
    it('extend() is refused once, before any member (the backend cannot extend)', async () => {
      const names = namesFor(2);
      const all = managers.mine.lockAll(names);
      expect(await all.acquire()).toBe(true);
      const { error } = await rejectsWith(LockError, () => all.extend(30_000));
      expect(error.message).toMatch(/cannot extend locks/);
      await all.release();
    });
  }

  if (fixture.capabilities.fencing) {
    it('fencingTokens: each member has its own token, and it grows with every holding', async () => {
      const names = namesFor(2);
      const all = managers.mine.lockAll(names);
      const rounds: ReadonlyMap<string, string | undefined>[] = [];
      for (let round = 0; round < 3; round++) {
        expect(await all.acquire()).toBe(true);
        rounds.push(all.fencingTokens);
        await all.release();
      }
      expect(all.fencingTokens.size).toBe(0);
      for (const name of names) expectStrictlyIncreasing(rounds.map((tokens) => tokens.get(name)));
    });
  }

  it('takes the set in the canonical order whatever order the names were given in, duplicates once', async () => {
    const [a, b, c] = namesFor(3) as [string, string, string];
    const all = managers.mine.lockAll([c, a, b, a]);
    expect(all.names).toEqual([a, b, c]);
    const { value, ms } = await timed(() => all.acquire(false));
    expect(value).toBe(true);
    expect(ms).toBeLessThan(SLACK_MS);
    expect(await heldOf([a, b, c])).toEqual([a, b, c]);
    await all.release();
  });
}
