/**
 * The leader election contract. A backend that declares `capabilities.election` gets the whole
 * of it (one leader at a time, terms strictly increasing, what the leader published read by
 * another "process", resign handing over at once, a lease renewed past its expiry, a leader whose
 * server is gone losing its signal and being replaced after the lease, abort, observe and events,
 * the background campaign, manager.close() resigning, fencing of a stale leader's write, options
 * checked at construction within the backend's expiry limits); any other backend refuses an
 * election with an `UnsupportedFeatureError` naming itself and why. "Another process" is a
 * second manager on a client of its own (for a backend that is not cross-process, the same
 * client).
 */
import { hostname } from 'node:os';
import {
  LeaderElection,
  type LeaderInfo,
  LockAbortedError,
  LockError,
  LockLostError,
  LockManager,
} from '../../sherlock.js';
import { expect } from '../expect.js';
import {
  delay,
  expectStrictlyIncreasing,
  rejectionOf,
  rejectsWith,
  SLACK_MS,
  throwsWith,
  timed,
  uniqueName,
  waitFor,
} from '../helpers.js';
import type { Runner, SubjectInfo } from '../subject.js';
import { HANDOFF_LIMIT_MS, POLL_NEVER, refusalContract, useTwoManagers } from './shared.js';

/** Options refused at construction, with the error type and what its message says. */
const REFUSED_OPTIONS: readonly [Record<string, unknown>, typeof TypeError, RegExp][] = [
  [{ expire: null }, TypeError, /'expire': got null, expected .*a leader needs a lease/],
  [{ expire: 0 }, RangeError, /'expire': got 0, expected a finite number of milliseconds >= 1/],
  [
    { expire: 3_000, renewEvery: 2_000 },
    RangeError,
    /'renewEvery': got 2000, expected .*at most expire \/ 2 \(1500 ms, expire being 3000 ms\)/,
  ],
  [{ renewEvery: '1s' }, TypeError, /'renewEvery': got "1s"/],
  [{ id: '' }, RangeError, /'id': got "" .*non-empty string of at most 256 characters/],
  [{ metadata: { region: { nested: true } } }, TypeError, /'metadata.region': got a plain object/],
  [{ metadata: ['a'] }, TypeError, /'metadata': got an instance of Array/],
  [{ observeInterval: 5 }, RangeError, /'observeInterval': got 5, expected .* >= 10/],
  [{ autoExtend: true }, TypeError, /Unknown option 'autoExtend' for LeaderElection options/],
  [{ retryInterval: -1 }, RangeError, /'retryInterval': got -1/],
];

export function electionContract(runner: Runner, fixture: SubjectInfo): void {
  const { capabilities, subject } = fixture;
  if (!capabilities.election) {
    refusalContract(runner, fixture, {
      feature: 'election',
      called: 'leader election',
      title:
        'manager.election() and new LeaderElection() throw an UnsupportedFeatureError naming the backend and why, sending nothing',
      viaManager: (manager, name) => manager.election(name),
      direct: (name) => new LeaderElection(name),
      lockName: (name) => `election:${name}`,
    });
    return;
  }
  const { it, afterEach } = runner;
  /** A lease the backend honours as such: 2 s (etcd counts whole seconds, 2 s at least). */
  const LEASE = Math.max(2_000, 2 * capabilities.expiry.granularity);
  const managers = useTwoManagers(runner, fixture, { releaseHeld: false });
  let elections: LeaderElection[] = [];

  /** An election object of `name`, on `main` or `other`, closed after the test. */
  const candidate = (
    name: string,
    on: 'main' | 'other',
    options: ConstructorParameters<typeof LeaderElection>[1] = {},
  ) => {
    const election = (on === 'main' ? managers.main : managers.other).election(name, options);
    elections.push(election);
    return election;
  };

  afterEach(async () => {
    await Promise.allSettled(elections.map((each) => each.close()));
    elections = [];
  });

  it('is a LeaderElection of the backend, with its name and key, leading nobody yet', async () => {
    const name = uniqueName('elect');
    const election = candidate(name, 'main');
    expect(election).toBeInstanceOf(LeaderElection);
    expect(election.name).toBe(name);
    expect(election.key).toBe(`election:${name}`);
    expect(election.isLeader).toBe(false);
    expect(election.leadership).toBeNull();
    expect(election.term).toBeUndefined();
    expect(election.expire).toBe(15_000);
    expect(election.renewEvery).toBe(5_000);
    expect(await election.leader()).toBeNull();
    expect(candidate(name, 'main', { namespace: 'ns' }).key).toBe(
      `ns${fixture.keySeparator}election:${name}`,
    );
    // The election's lock is not the lock of the same name.
    const lock = managers.main.lock(name);
    expect(await lock.acquire(false)).toBe(true);
    await candidate(name, 'other').campaign({ signal: AbortSignal.timeout(SLACK_MS) });
    await lock.release();
  });

  it('campaign() resolves with a term and a live signal; another process reads who leads, as published', async () => {
    const name = uniqueName('elect-who');
    const a = candidate(name, 'main', { id: 'replica-a', metadata: { zone: 'eu-1', weight: 2 } });
    const observer = candidate(name, 'other');
    const leadership = await a.campaign();
    expect(a.isLeader).toBe(true);
    expect(a.term).toBe(leadership.term);
    expect(a.leadership).toBe(leadership);
    expect(leadership.signal.aborted).toBe(false);
    expect(BigInt(leadership.term)).toBeGreaterThan(0n);
    const expected: LeaderInfo = {
      term: leadership.term,
      id: 'replica-a',
      host: hostname(),
      pid: process.pid,
      metadata: { zone: 'eu-1', weight: 2 },
    };
    expect(leadership.leader).toEqual(expected);
    expect(await observer.leader()).toEqual(expected);
    expect(observer.isLeader).toBe(false);
    // Campaigning again while leading resolves at once with the same leadership.
    expect(await a.campaign()).toBe(leadership);
    expect(await a.resign()).toBe(true);
    expect(await a.resign()).toBe(false);
    expect(await observer.leader()).toBeNull();
  });

  it('one leader at a time: 4 candidates over two processes, each resigning in turn; terms strictly increase', async () => {
    const name = uniqueName('elect-one');
    const candidates = [0, 1, 2, 3].map((i) => candidate(name, i % 2 ? 'other' : 'main'));
    const order: number[] = [];
    const terms: string[] = [];
    let leaders = 0;
    let maxLeaders = 0;
    await Promise.all(
      candidates.map(async (election, i) => {
        const { term } = await election.campaign();
        leaders += 1;
        maxLeaders = Math.max(maxLeaders, leaders);
        order.push(i);
        terms.push(term);
        expect((await election.leader())?.term).toBe(term);
        await delay(150);
        leaders -= 1;
        await election.resign();
      }),
    );
    expect(maxLeaders).toBe(1);
    expect(order.toSorted()).toEqual([0, 1, 2, 3]);
    expectStrictlyIncreasing(terms);
  });

  it(`resign() hands over at once: a waiting candidate leads within ${HANDOFF_LIMIT_MS} ms (its retryInterval being 10 s); the old leader's signal aborts`, async () => {
    const name = uniqueName('elect-resign');
    const a = candidate(name, 'main', POLL_NEVER);
    const b = candidate(name, 'other', POLL_NEVER);
    const lost: unknown[] = [];
    a.on('lost', (event) => lost.push(event));
    const first = await a.campaign();
    const next = b.campaign();
    await delay(300); // b is in line
    expect(b.isLeader).toBe(false);
    const { value: second, ms } = await timed(async () => {
      await a.resign();
      return next;
    });
    expect(ms).toBeLessThan(HANDOFF_LIMIT_MS);
    expect(BigInt(second.term)).toBeGreaterThan(BigInt(first.term));
    expect(first.signal.aborted).toBe(true);
    expect(first.signal.reason).toBeInstanceOf(LockError);
    expect((first.signal.reason as Error).message).toMatch(/resigned/);
    expect(a.isLeader).toBe(false);
    expect(lost).toEqual([
      { term: first.term, reason: 'resigned', error: first.signal.reason as LockError },
    ]);
    expect((await a.leader())?.term).toBe(second.term);
  });

  it('the leader renews its lease: it still leads after 2 leases (unrenewed, it would have lost it after 1), and a candidate did not take over', async () => {
    const name = uniqueName('elect-renew');
    const a = candidate(name, 'main', { expire: LEASE });
    const b = candidate(name, 'other', { expire: LEASE });
    const { term, signal } = await a.campaign();
    const waiting = b.campaign().catch((err: unknown) => err);
    await delay(LEASE * 2);
    expect(signal.aborted).toBe(false);
    expect(a.isLeader).toBe(true);
    expect(b.isLeader).toBe(false);
    expect((await b.leader())?.term).toBe(term);
    await b.resign();
    expect(await waiting).toBeInstanceOf(LockAbortedError);
  });

  // A backend that is not cross-process has no second connection to cut.
  if (capabilities.crossProcess) {
    it('a leader cut off from its server loses its signal (LockLostError), and a candidate leads once the lease ran out, with a greater term', async () => {
      const name = uniqueName('elect-dead');
      const doomedClient = subject.createClient();
      const doomed = new LockManager({ backend: fixture.definition, client: doomedClient });
      try {
        const a = doomed.election(name, { expire: LEASE, operationTimeout: 500 });
        const b = candidate(name, 'other', { expire: LEASE });
        const first = await a.campaign();
        const next = b.campaign();
        await subject.closeClient(doomedClient); // a's renewals fail from now on
        const lostAt = await timed(
          () =>
            new Promise<void>((resolve) =>
              first.signal.addEventListener('abort', () => resolve(), { once: true }),
            ),
        );
        expect(first.signal.reason).toBeInstanceOf(LockLostError);
        expect(lostAt.ms).toBeLessThan(LEASE + SLACK_MS);
        expect(a.isLeader).toBe(false);
        const second = await next;
        expect(BigInt(second.term)).toBeGreaterThan(BigInt(first.term));
        expect((await b.leader())?.term).toBe(second.term);
        await a.close();
      } finally {
        await doomed.close().catch(() => undefined);
      }
    });
  }

  it('campaign({ signal }) rejects with LockAbortedError when aborted, and resign() stops a campaign; nothing is left in line', async () => {
    const name = uniqueName('elect-abort');
    const a = candidate(name, 'main');
    const b = candidate(name, 'other', POLL_NEVER);
    const first = await a.campaign();
    const controller = new AbortController();
    const waiting = rejectionOf(b.campaign({ signal: controller.signal }));
    await delay(200);
    controller.abort();
    expect(await waiting).toBeInstanceOf(LockAbortedError);
    const again = rejectionOf(b.campaign());
    await delay(200);
    expect(await b.resign()).toBe(false);
    expect(await again).toBeInstanceOf(LockAbortedError);
    await rejectsWith(LockAbortedError, () =>
      b.campaign({ signal: AbortSignal.abort(new Error('already aborted')) }),
    );
    expect(b.isLeader).toBe(false);
    // Neither attempt kept a place that would block the line: a new candidate follows a.
    const c = candidate(name, 'other', POLL_NEVER);
    const next = c.campaign();
    await delay(200);
    await a.resign();
    const { ms, value } = await timed(() => next);
    expect(ms).toBeLessThan(HANDOFF_LIMIT_MS);
    expect(BigInt(value.term)).toBeGreaterThan(BigInt(first.term));
  });

  it("observe() yields who leads, each change, and null when nobody does; 'change' events follow it", async () => {
    const name = uniqueName('elect-observe');
    const a = candidate(name, 'main', { id: 'a' });
    const b = candidate(name, 'other', { id: 'b' });
    const watcher = candidate(name, 'other', { observeInterval: 50 });
    const changes: (string | null)[] = [];
    watcher.on('change', (leader) => changes.push(leader?.id ?? null));
    const seen: (string | null)[] = [];
    const controller = new AbortController();
    const observing = (async () => {
      for await (const leader of watcher.observe({ signal: controller.signal })) {
        seen.push(leader?.id ?? null);
      }
    })();
    await waitFor(() => seen.length === 1);
    await a.campaign();
    await waitFor(() => seen.length === 2);
    const next = b.campaign();
    await a.resign();
    await next;
    await waitFor(() => seen.length === 3);
    await b.resign();
    await waitFor(() => seen.length === 4);
    controller.abort();
    await observing;
    expect(seen).toEqual([null, 'a', 'b', null]);
    await waitFor(() => changes.length === 4);
    expect(changes).toEqual([null, 'a', 'b', null]);
  });

  it("start() campaigns in the background and again after a loss; 'elected' and 'lost' events; resign() stops it", async () => {
    const name = uniqueName('elect-start');
    const a = candidate(name, 'main', POLL_NEVER);
    const b = candidate(name, 'other', POLL_NEVER);
    const events: string[] = [];
    b.on('elected', ({ term }) => events.push(`elected ${term}`));
    b.on('lost', ({ term, reason }) => events.push(`lost ${term} ${reason}`));
    const first = await a.campaign();
    b.start();
    expect(b.isCampaigning).toBe(true);
    await delay(200);
    expect(b.isLeader).toBe(false);
    await a.resign();
    await waitFor(() => b.isLeader);
    const term = b.term;
    expect(BigInt(term ?? '0')).toBeGreaterThan(BigInt(first.term));
    expect(events).toEqual([`elected ${term}`]);
    await b.resign();
    expect(b.isCampaigning).toBe(false);
    expect(events).toEqual([`elected ${term}`, `lost ${term} resigned`]);
    // Stopped: a leads again, and b does not come back.
    await a.campaign();
    await delay(300);
    expect(b.isLeader).toBe(false);
  });

  it('manager.close() resigns its elections: the other candidate leads at once', async () => {
    const name = uniqueName('elect-close');
    const client = capabilities.crossProcess ? subject.createClient() : managers.clients[0];
    if (!client) throw new Error('a client');
    const closing = new LockManager({ backend: fixture.definition, client });
    try {
      const a = closing.election(name);
      const b = candidate(name, 'other', POLL_NEVER);
      const first = await a.campaign();
      const next = b.campaign();
      await delay(200);
      const { ms } = await timed(async () => {
        await closing.close();
        await next;
      });
      expect(ms).toBeLessThan(HANDOFF_LIMIT_MS);
      expect(first.signal.aborted).toBe(true);
      expect(throwsWith(Error, () => a.start()).message).toMatch(/is closed/);
    } finally {
      await closing.close();
      if (capabilities.crossProcess) await subject.closeClient(client);
    }
  });

  it("fencing: the term orders leaderships, so a stale leader's write (an older term) is refused", async () => {
    const name = uniqueName('elect-fence');
    /** A store that keeps the greatest term it saw and refuses writes with an older one. */
    let highest = 0n;
    const writes: string[] = [];
    const write = (term: string, what: string) => {
      if (BigInt(term) < highest) return false;
      highest = BigInt(term);
      writes.push(what);
      return true;
    };
    const a = candidate(name, 'main');
    const b = candidate(name, 'other');
    const stale = await a.campaign();
    expect(write(stale.term, 'a1')).toBe(true);
    const next = b.campaign();
    await a.resign();
    const fresh = await next;
    expect(write(fresh.term, 'b1')).toBe(true);
    // a still believes (a paused process would) and writes with its old term: refused.
    expect(write(stale.term, 'a2')).toBe(false);
    expect(writes).toEqual(['a1', 'b1']);
  });

  it('options are checked at construction: typed errors naming the option, the value and what is allowed', () => {
    const name = uniqueName('elect-options');
    const refused = REFUSED_OPTIONS.map(([options, type, message]) => {
      const error = throwsWith(type, () => managers.main.election(name, options as never));
      expect(error.message, JSON.stringify(options)).toMatch(message);
      return error;
    });
    expect(refused).toHaveLength(REFUSED_OPTIONS.length);
  });

  it("the backend's expiry limits apply to the lease", () => {
    const { minimum, granularity } = capabilities.expiry;
    if (minimum > 1) {
      const short = Math.floor(minimum / 2);
      const error = throwsWith(RangeError, () =>
        managers.main.election('short', { expire: short }),
      );
      expect(error.message).toMatch(new RegExp(`'expire'.*${short}`));
    }
    const lease = Math.max(2_000, 2 * granularity);
    const election = managers.main.election('ok', { expire: lease });
    expect(Math.abs(election.renewEvery - lease / 3)).toBeLessThan(1);
  });
}
