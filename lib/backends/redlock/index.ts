import type { LockBackend, LockTarget } from '../../core/backend.js';
import { BaseLock, type BaseLockOptions } from '../../core/base-lock.js';
import { parseConnection } from '../../core/connection.js';
import { messages } from '../../core/messages.js';
import { backends } from '../../core/registry.js';
import { now, settleWithin } from '../../core/timing.js';
import { EXTEND, FAIL_FAST, ioredis, RELEASE, type RedisCommands } from '../redis/scripts.js';
import { redlockInspection } from './inspect.js';
import { RedisQuorum, type RedisQuorumOptions } from './quorum.js';

export { RedisQuorum, type RedisQuorumOptions };

interface QuorumCommands extends RedisCommands {
  set(key: string, value: string, ...args: (string | number)[]): Promise<string | null>;
}

/** Options of a RedlockLock: the lock options and a `RedisQuorum`. */
export type RedlockLockOptions = BaseLockOptions;

/**
 * The Redlock algorithm over a `RedisQuorum`: the key `namespace_name` is set with `SET NX PX` on
 * every server at once, and the lock is held when a majority granted it within the validity time
 * (`expire` minus the time it took and the clock drift); otherwise it is released on all of them.
 * Release and extend run on all servers; `locked()` asks whether a majority holds the key.
 * One server down (of three) does not stop it. No fencing token: there is no single counter.
 *
 * @example
 * const lock = new RedlockLock('invoices', { client: quorum, expire: 10_000 });
 * await lock.using(async () => generateInvoices());
 */
export class RedlockLock extends BaseLock {
  constructor(name: string, options?: RedlockLockOptions) {
    super(name, options);
  }
}

type Vote = boolean | { error: unknown };

/** Each server gets a short deadline of its own, so one dead server cannot stall the vote. */
function serverDeadline(lock: LockTarget): number {
  const share = lock.expire === null ? lock.operationTimeout : Math.max(50, lock.expire / 10);
  return Math.min(lock.operationTimeout, share);
}

/**
 * Runs `command` on every server at once: true/false per server, or the error. Resolves as soon
 * as the answers decide it (a majority said yes, or so many said no that no majority can say
 * yes): a dead or slow server then costs nothing while the others agree. Otherwise it waits for
 * every server (each within its own deadline). Votes still out count as failures; their commands
 * finish in the background.
 */
function vote(
  lock: LockTarget<RedisQuorum>,
  command: (client: QuorumCommands) => Promise<boolean>,
): Promise<Vote[]> {
  const { clients, quorum } = lock.client;
  const deadline = serverDeadline(lock);
  const pending: Vote = { error: new Error('no answer yet') };
  const votes: Vote[] = clients.map(() => pending);
  return new Promise((resolve) => {
    let yes = 0;
    let no = 0;
    let settled = 0;
    const settle = (i: number, vote: Vote) => {
      votes[i] = vote;
      settled++;
      if (vote === true) yes++;
      if (vote === false) no++;
      if (yes >= quorum || no > clients.length - quorum || settled === clients.length) {
        resolve([...votes]);
      }
    };
    clients.forEach((client, i) => {
      settleWithin(command(client as QuorumCommands), deadline).then(
        (result) =>
          settle(
            i,
            result.kind === 'value' ? result.value : { error: new Error('no answer in time') },
          ),
        (error: unknown) => settle(i, { error }),
      );
    });
  });
}

/** Counts the yes votes; throws when too many servers failed for a majority to be known. */
function tally(quorum: RedisQuorum, votes: Vote[]): number {
  const failures = votes.filter((v): v is { error: unknown } => typeof v === 'object');
  const yes = votes.filter((v) => v === true).length;
  if (yes < quorum.quorum && votes.length - failures.length < quorum.quorum) {
    throw new AggregateError(
      failures.map((f) => f.error),
      `only ${votes.length - failures.length} of ${votes.length} redis servers answered; a majority is ${quorum.quorum}`,
    );
  }
  return yes;
}

/** Whether a majority agreed soon enough for the lock to still be valid. */
function valid(quorum: RedisQuorum, yes: number, startedAt: number, ttl: number | null): boolean {
  if (yes < quorum.quorum) return false;
  if (ttl === null) return true;
  const drift = ttl * quorum.driftFactor + 2;
  return ttl - (now() - startedAt) - drift > 0;
}

async function releaseAll(lock: LockTarget<RedisQuorum>, token: string): Promise<boolean> {
  const votes = await vote(lock, async (c) => (await RELEASE.run(c, [lock.key], [token])) === 1);
  return tally(lock.client, votes) >= lock.client.quorum;
}

/** A quorum from a list of `redis://` URLs (or `{ servers, driftFactor }`). */
function connectQuorum(connection: unknown): RedisQuorum {
  const { servers, options } = parseConnection(
    'redlock',
    connection ?? ['redis://127.0.0.1:6379'],
    'servers',
  );
  const { driftFactor, ...rest } = options as { driftFactor?: number };
  if (servers.length === 0 || Object.keys(rest).length > 0) {
    throw new TypeError(
      messages.invalidOption(
        'connection',
        connection,
        'redis:// URLs of independent servers (a comma-separated string or an array), or { servers, driftFactor }',
      ),
    );
  }
  const { Redis } = ioredis();
  const clients = servers.map((url) => new Redis(url, FAIL_FAST));
  return new RedisQuorum(clients, driftFactor === undefined ? {} : { driftFactor });
}

/** The Redlock backend: a majority of independent Redis servers. Waiters poll, with jitter. */
const redlockBackend: LockBackend<RedisQuorum> = {
  name: 'redlock',
  library: 'ioredis',
  capabilities: {
    fencing: false,
    extend: true,
    handOff: 'poll',
    crossProcess: true,
    semaphore: false,
    readWrite: false,
    expiry: { granularity: 1, minimum: 1, maximum: null, earlyBy: 0 },
  },
  unsupported: {
    election:
      "a leader's term is a fencing token, and a quorum of servers has no single counter to issue one; use the redis or etcd backend",
    semaphore:
      'a majority of servers does not bound the number of holders: with 3 servers and limit 2, holders on servers {1,2}, {2,3} and {1,3} each have a majority while no server holds more than 2 permits, so 3 hold at once. A safe quorum would need more than n × limit / (limit + 1) servers per permit (all 3 of 3 for limit 2), which one server down would stop; use the redis or etcd backend',
    readWrite:
      'it is not implemented over a quorum: each reader and each waiting writer would be an entry on a majority of servers, and a server that restarts without its data forgets every reader it held, so a writer could gain a majority next to live readers (the Redlock hazard, once per reader); writer preference would also need the waiting writers agreed on by a majority; use the redis or etcd backend',
  },
  clientClass: () => RedisQuorum,
  connect: connectQuorum,
  close: (quorum) => quorum.quit(),

  async acquire(lock, token) {
    const startedAt = now();
    const px = lock.expire === null ? [] : ['PX', Math.ceil(lock.expire)];
    const votes = await vote(
      lock,
      async (c) => (await c.set(lock.key, token, ...px, 'NX')) === 'OK',
    );
    let granted = false;
    try {
      granted = valid(lock.client, tally(lock.client, votes), startedAt, lock.expire);
    } finally {
      // No majority (or too late): take back what we got, everywhere, before saying no.
      if (!granted) await releaseAll(lock, token).catch(() => undefined);
    }
    return granted;
  },
  release: (lock, token) => releaseAll(lock, token),
  async extend(lock, token, ttl) {
    const startedAt = now();
    const votes = await vote(
      lock,
      async (c) => (await EXTEND.run(c, [lock.key], [token, String(Math.ceil(ttl))])) === 1,
    );
    return valid(lock.client, tally(lock.client, votes), startedAt, ttl);
  },
  async locked(lock) {
    const votes = await vote(lock, async (c) => (await c.exists(lock.key)) === 1);
    return tally(lock.client, votes) >= lock.client.quorum;
  },
  // Every server is asked (each answer bounded by `timeout`): up with a majority, else down.
  async ping(quorum, timeout) {
    const answers = await Promise.allSettled(
      quorum.clients.map(async (c) => {
        const ping = (c as unknown as { ping(): Promise<unknown> }).ping();
        const settled = await settleWithin(ping, timeout);
        if (settled.kind !== 'value') throw new Error('no answer in time');
      }),
    );
    const answered = answers.filter((a) => a.status === 'fulfilled').length;
    const servers = quorum.clients.length;
    if (answered < quorum.quorum) {
      throw new Error(
        `only ${answered} of ${servers} redis servers answered PING; a majority is ${quorum.quorum}`,
      );
    }
    return { servers, answered, quorum: quorum.quorum };
  },
  // inspect / list / forceRelease from what a majority of the servers store (inspect.ts).
  inspection: redlockInspection(releaseAll),
};

export const REDLOCK = backends.register({ ...redlockBackend, lockClass: RedlockLock });
