/**
 * The semaphore contract. A backend that declares `capabilities.semaphore` gets the whole of it
 * (never more than `limit` holders, refusal when full, a waiter woken by a release, timeout,
 * abort, a dead holder's permit reclaimed by the server, release by a non-holder, fencing, extend
 * and autoExtend, count); any other backend refuses a semaphore with an `UnsupportedFeatureError`
 * naming itself and why. "Another process" is a second manager on a client of its own.
 */
import {
  LockAbortedError,
  LockManager,
  LockNotHeldError,
  LockTimeoutError,
  Semaphore,
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

export function semaphoreContract(runner: Runner, fixture: SubjectInfo): void {
  if (!fixture.capabilities.semaphore) {
    refusalContract(runner, fixture, {
      feature: 'semaphore',
      called: 'a semaphore',
      title:
        'manager.semaphore() and new Semaphore() throw an UnsupportedFeatureError naming the backend and why, sending nothing',
      viaManager: (manager, name) => manager.semaphore(name, 2),
      direct: (name) => new Semaphore(name, { limit: 2 }),
    });
    return;
  }
  const { it } = runner;
  const { capabilities, subject } = fixture;
  /** Two managers: two processes (for memory: two parts of one process, one store). */
  const managers = useTwoManagers(runner, fixture);

  /** `n` semaphore objects of `name`, alternating between the two managers. */
  const permits = (name: string, n: number, limit: number, options = {}) =>
    Array.from({ length: n }, (_, i) =>
      (i % 2 === 0 ? managers.main : managers.other).semaphore(name, limit, options),
    );

  it('is a Semaphore of the backend, with its name, key and limit, holding nothing yet', async () => {
    const name = uniqueName('sem');
    const sem = managers.main.semaphore(name, 3);
    expect(sem).toBeInstanceOf(Semaphore);
    expect(sem.name).toBe(name);
    expect(sem.key).toBe(name);
    expect(sem.limit).toBe(3);
    expect(sem.backend).toBe(fixture.definition);
    expect(sem.isAcquired).toBe(false);
    expect(sem.fencingToken).toBeUndefined();
    expect(sem.signal.aborted).toBe(true);
    expect(await sem.count()).toBe(0);
    expect(await sem.locked()).toBe(false);
    expect(managers.main.semaphore(name, 3, { namespace: 'ns' }).key).toBe(
      `ns${fixture.keySeparator}${name}`,
    );
  });

  it('never has more than `limit` holders: 9 concurrent acquirers on limit 3, 3 rounds each; the maximum reached is exactly 3', async () => {
    const name = uniqueName('sem-limit');
    const limit = 3;
    const sems = permits(name, 9, limit, { timeout: 60_000 });
    let current = 0;
    let max = 0;
    const counts: number[] = [];
    await Promise.all(
      sems.map(async (sem) => {
        for (let round = 0; round < 3; round++) {
          await sem.using(async () => {
            current += 1;
            max = Math.max(max, current);
            counts.push(await sem.count());
            await delay(100);
            current -= 1;
          });
        }
      }),
    );
    expect(max).toBeLessThanOrEqual(limit);
    expect(max).toBe(limit);
    expect(counts).toHaveLength(27);
    expect(Math.max(...counts)).toBeLessThanOrEqual(limit);
    expect(await sems[0]?.count()).toBe(0);
  });

  it('non-blocking: refused at once when every permit is held, granted once one is given back', async () => {
    const name = uniqueName('sem-full');
    const [a, b, c] = permits(name, 3, 2, { timeout: 10_000 });
    if (!a || !b || !c) throw new Error('three semaphores');
    expect(await a.acquire(false)).toBe(true);
    expect(await a.count()).toBe(1);
    expect(await a.locked()).toBe(false);
    expect(await b.acquire({ blocking: false })).toBe(true);
    expect(await c.count()).toBe(2);
    expect(await c.locked()).toBe(true);

    // A blocking acquire would wait the whole 10 s timeout.
    const { value, ms } = await timed(() => c.acquire(false));
    expect(value).toBe(false);
    expect(ms).toBeLessThan(3_000);
    expect(c.isAcquired).toBe(false);
    expect(c.fencingToken).toBeUndefined();
    expect(await c.count()).toBe(2);

    await a.release();
    expect(await c.count()).toBe(1);
    expect(await c.acquire(false)).toBe(true);
    expect(await c.count()).toBe(2);
    await b.release();
    await c.release();
    expect(await a.count()).toBe(0);
  });

  for (const limit of capabilities.handOff === 'push' ? [1, 2] : []) {
    it(`limit ${limit}: a blocking acquire is woken by a release (within ${HANDOFF_LIMIT_MS} ms, its retryInterval being 10 s), one waiter per freed permit`, async () => {
      const name = uniqueName('sem-wake');
      const holders = permits(name, limit, limit);
      const waiters = permits(name, 2, limit, { ...POLL_NEVER, timeout: 20_000 });
      for (const holder of holders) expect(await holder.acquire(false)).toBe(true);
      const granted: number[] = [];
      const waiting = waiters.map((sem, i) => sem.acquire().then(() => granted.push(i)));
      await delay(IN_LINE_MS); // both are in line
      expect(granted, `granted while ${await waiters[0]?.count()} are held`).toEqual([]);

      await holders[0]?.release();
      const first = await timed(() => waitFor(() => granted.length === 1, { timeout: SLACK_MS }));
      expect(first.ms).toBeLessThan(HANDOFF_LIMIT_MS);
      await delay(300);
      expect(granted, 'one permit freed, one waiter let in').toHaveLength(1);

      // The next permit freed: by the other holder, or (limit 1) by the waiter let in.
      const next = holders[1] ?? waiters[granted[0] ?? 0];
      await next?.release();
      const second = await timed(() => waitFor(() => granted.length === 2, { timeout: SLACK_MS }));
      expect(second.ms).toBeLessThan(HANDOFF_LIMIT_MS);
      await Promise.all(waiting);
      expect(await waiters[0]?.count()).toBe(limit);
    });
  }

  it('a blocking acquire times out with LockTimeoutError, holding nothing', async () => {
    const name = uniqueName('sem-timeout');
    const [holder, waiter] = permits(name, 2, 1, { expire: 30_000 });
    if (!holder || !waiter) throw new Error('two semaphores');
    expect(await holder.acquire(false)).toBe(true);
    const { error, ms } = await rejectsWith(LockTimeoutError, () =>
      waiter.acquire({ timeout: 500 }),
    );
    expect(error.timeout).toBe(500);
    expect(error.lockName).toBe(name);
    expect(ms).toBeGreaterThanOrEqual(450);
    expect(ms).toBeLessThan(500 + SLACK_MS);
    expect(waiter.isAcquired).toBe(false);
    expect(await holder.count()).toBe(1);
    // It left the line: the permit given back goes to a newcomer at once.
    await holder.release();
    const newcomer = managers.other.semaphore(name, 1);
    expect(await newcomer.acquire(false)).toBe(true);
    await newcomer.release();
  });

  it('a blocking acquire is cancelled by its signal with LockAbortedError, holding nothing', async () => {
    const name = uniqueName('sem-abort');
    const [holder, waiter] = permits(name, 2, 1);
    if (!holder || !waiter) throw new Error('two semaphores');
    expect(await holder.acquire(false)).toBe(true);
    const controller = new AbortController();
    const reason = new Error('stop waiting');
    setTimeout(() => controller.abort(reason), 300);
    const { error, ms } = await rejectsWith(LockAbortedError, () =>
      waiter.acquire({ timeout: 30_000, signal: controller.signal }),
    );
    expect(error.cause).toBe(reason);
    expect(ms).toBeLessThan(300 + SLACK_MS);
    expect(waiter.isAcquired).toBe(false);
    await holder.release();
    await waitFor(async () => (await holder.count()) === 0, { what: 'no permit left held' });
    const newcomer = managers.other.semaphore(name, 1);
    expect(await newcomer.acquire(false)).toBe(true);
    await newcomer.release();
  });

  it('a holder that dies (never releases) loses its permit at its expiry, by the server, while another holder keeps its own: a waiter then gets it, the dead holder cannot release it', async () => {
    const name = uniqueName('sem-dead');
    const expire = fixture.shortExpire;
    // A live holder with a long expiry keeps the semaphore's state alive on the server: the
    // dead holder's permit alone must go.
    const alive = managers.main.semaphore(name, 2, { expire: 60_000 });
    expect(await alive.acquire(false)).toBe(true);
    const dead = managers.other.semaphore(name, 2, { expire });
    expect(await dead.acquire(false)).toBe(true);
    const deadToken = dead.fencingToken;
    // The holder stops: no release, no renewal (what a killed process does).
    const waiter = managers.main.semaphore(name, 2, { timeout: expire + 20_000, expire: 30_000 });
    const { ms } = await timed(() => waiter.acquire());
    expect(waiter.isAcquired).toBe(true);
    // It waited for the expiry (half of it at least: the clocks start a moment apart).
    expect(ms).toBeGreaterThanOrEqual(lifetime(fixture, expire) / 2);
    expect(ms).toBeLessThan(expire + SLACK_MS);
    expect(BigInt(waiter.fencingToken ?? -1)).toBeGreaterThan(BigInt(deadToken ?? -1));
    expect(await waiter.count()).toBe(2);
    // The dead holder's signal has aborted (its permit could not be confirmed), and its
    // release is refused: the permit it held is gone.
    expect(dead.signal.aborted).toBe(true);
    const { error } = await rejectsWith(LockNotHeldError, () => dead.release());
    expect(error.reason).toBe('not-owned');
    expect(await waiter.count()).toBe(2);
    await waiter.release();
    await alive.release();
    expect(await waiter.count()).toBe(0);
  });

  it('a permit no one releases frees itself: count() drops to 0 after the expiry, with no acquire to trigger it', async () => {
    const name = uniqueName('sem-expire');
    const expire = fixture.shortExpire;
    const sems = permits(name, 2, 2, { expire });
    for (const sem of sems) expect(await sem.acquire(false)).toBe(true);
    expect(await sems[0]?.count()).toBe(2);
    for (const sem of sems) sem.abandon();
    await waitFor(async () => (await managers.main.semaphore(name, 2).count()) === 0, {
      timeout: expire + SLACK_MS,
      what: 'the expired permits to be dropped',
    });
    expect(await managers.main.semaphore(name, 2).locked()).toBe(false);
  });

  it('expire: null: a permit without expiry stays until released; a waiter without expiry gets it then', async () => {
    const name = uniqueName('sem-forever');
    const holder = managers.main.semaphore(name, 1, { expire: null });
    expect(await holder.acquire(false)).toBe(true);
    const refused = managers.other.semaphore(name, 1, { expire: null });
    const { error } = await rejectsWith(LockTimeoutError, () => refused.acquire({ timeout: 300 }));
    expect(error.retryAfter).toBeUndefined();
    const waiter = managers.other.semaphore(name, 1, { expire: null, timeout: 20_000 });
    const acquiring = waiter.acquire();
    await delay(IN_LINE_MS);
    await holder.release();
    expect(await acquiring).toBe(true);
    expect(await waiter.count()).toBe(1);
    await delay(fixture.shortExpire + 500); // nothing expires it
    expect(await waiter.count()).toBe(1);
    expect(waiter.signal.aborted).toBe(false);
    await waiter.release();
    expect(await waiter.count()).toBe(0);
  });

  it('release by a non-holder rejects with LockNotHeldError and frees nothing', async () => {
    const name = uniqueName('sem-nonholder');
    const [holder, stranger] = permits(name, 2, 1);
    if (!holder || !stranger) throw new Error('two semaphores');
    expect(await holder.acquire(false)).toBe(true);
    const { error } = await rejectsWith(LockNotHeldError, () => stranger.release());
    expect(error.reason).toBe('not-acquired');
    expect(error.operation).toBe('release');
    const extended = await rejectsWith(LockNotHeldError, () => stranger.extend(10_000));
    expect(extended.error.operation).toBe('extend');
    expect(await holder.count()).toBe(1);
    expect(holder.isAcquired).toBe(true);
    await holder.release();
    // Released twice: the second is refused, the count stays right.
    expect((await rejectsWith(LockNotHeldError, () => holder.release())).error.reason).toBe(
      'not-acquired',
    );
    expect(await holder.count()).toBe(0);
  });

  it('fencing: every permit gets a token above those granted before it, from either manager; concurrent holders get distinct ones', async () => {
    expect(capabilities.fencing).toBe(true);
    const name = uniqueName('sem-fence');
    const sems = permits(name, 4, 2);
    const sequential: (string | undefined)[] = [];
    for (let round = 0; round < 3; round++) {
      for (const sem of sems) {
        expect(await sem.acquire(false)).toBe(true);
        sequential.push(sem.fencingToken);
        await sem.release();
        expect(sem.fencingToken).toBeUndefined();
      }
    }
    expectStrictlyIncreasing(sequential);

    const [a, b, c] = sems;
    if (!a || !b || !c) throw new Error('three semaphores');
    expect(await a.acquire(false)).toBe(true);
    expect(await b.acquire(false)).toBe(true);
    expect(a.fencingToken).not.toBe(b.fencingToken);
    expectStrictlyIncreasing([sequential.at(-1), a.fencingToken, b.fencingToken]);
    expect(await c.acquire(false)).toBe(false);
    expect(c.fencingToken).toBeUndefined();
    await a.release();
    expect(await c.acquire(false)).toBe(true);
    expectStrictlyIncreasing([b.fencingToken, c.fencingToken]);
  });

  it('extend(30000) keeps a permit past its expire; autoExtend keeps one for 2 expiries; the signal stays quiet', async () => {
    expect(capabilities.extend).toBe(true);
    const name = uniqueName('sem-extend');
    const expire = fixture.shortExpire;
    const held = managers.main.semaphore(name, 1, { expire });
    expect(await held.acquire(false)).toBe(true);
    const token = held.fencingToken;
    await held.extend(30_000);
    await delay(expire + 500);
    expect(held.fencingToken).toBe(token);
    expect(held.signal.aborted).toBe(false);
    expect(await held.count()).toBe(1);
    expect(await managers.other.semaphore(name, 1).acquire(false)).toBe(false);
    await held.release();

    const renewed = managers.main.semaphore(name, 1, { expire: 2 * expire, autoExtend: true });
    expect(renewed.renewEvery).toBe((2 * expire) / 3);
    expect(await renewed.acquire(false)).toBe(true);
    await delay(2 * 2 * expire);
    expect(renewed.isAcquired).toBe(true);
    expect(renewed.signal.aborted).toBe(false);
    expect(await renewed.count()).toBe(1);
    expect(await managers.other.semaphore(name, 1).acquire(false)).toBe(false);
    await renewed.release();
    expect(await renewed.count()).toBe(0);
  });

  it('using() and await using release the permit; manager.close() gives back what is still held', async () => {
    const name = uniqueName('sem-using');
    const sem = managers.main.semaphore(name, 2);
    const result = await sem.using(async (held) => {
      expect(held).toBe(sem);
      expect(held.isAcquired).toBe(true);
      expect(held.signal.aborted).toBe(false);
      expect(await held.count()).toBe(1);
      return 'done';
    });
    expect(result).toBe('done');
    expect(sem.isAcquired).toBe(false);
    expect(await sem.count()).toBe(0);
    {
      const scoped = managers.main.semaphore(name, 2);
      await scoped.acquire();
      await using _ = scoped;
      expect(await scoped.count()).toBe(1);
    }
    expect(await sem.count()).toBe(0);

    // For memory, the one store (its "clients" share nothing).
    const client = capabilities.crossProcess ? subject.createClient() : managers.main.client;
    try {
      const closing = new LockManager({ backend: fixture.definition, client });
      const kept = closing.semaphore(name, 2);
      expect(await kept.acquire(false)).toBe(true);
      expect(closing.held()).toEqual([kept]);
      const report = await closing.close();
      expect(report.released).toEqual([name]);
      expect(await sem.count()).toBe(0);
    } finally {
      if (capabilities.crossProcess) await subject.closeClient(client);
    }
  });

  it('a semaphore and a lock of the same name are apart: neither sees the other', async () => {
    const name = uniqueName('sem-apart');
    const lock = managers.main.lock(name);
    expect(await lock.acquire(false)).toBe(true);
    const sem = managers.other.semaphore(name, 1);
    expect(await sem.locked()).toBe(false);
    expect(await sem.acquire(false)).toBe(true);
    expect(await lock.locked()).toBe(true);
    await lock.release();
    expect(await sem.count()).toBe(1);
    expect(await managers.main.lock(name).locked()).toBe(false);
    await sem.release();
  });

  it('the limit belongs to each acquire: with 2 held, a limit-3 acquire is granted and a limit-2 one refused', async () => {
    const name = uniqueName('sem-limits');
    const two = permits(name, 2, 2);
    for (const sem of two) expect(await sem.acquire(false)).toBe(true);
    const three = managers.other.semaphore(name, 3);
    expect(await three.acquire(false)).toBe(true);
    expect(await three.count()).toBe(3);
    expect(await managers.main.semaphore(name, 2).acquire(false)).toBe(false);
    expect(await managers.main.semaphore(name, 4).acquire(false)).toBe(true);
  });
}
