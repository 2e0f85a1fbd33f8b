import { BaseLock, type BaseLockOptions } from '../core/base-lock.js';
import { messages } from '../core/messages.js';
import { checkConnection } from '../core/options.js';
import { backends } from '../core/registry.js';
import { now, settleWithin, sleep } from '../core/timing.js';
import { EXTEND, FAIL_FAST, ioredis, RELEASE, type RedisCommands } from './redis-commands.js';

interface QuorumCommands extends RedisCommands {
  set(key: string, value: string, ...args: (string | number)[]): Promise<string | null>;
}

/** Options of a `RedisQuorum`. */
export interface RedisQuorumOptions {
  /**
   * Share of the expiry allowed for clock drift between the servers (Redlock's drift factor);
   * a lock is valid for `expire - elapsed - expire * driftFactor - 2 ms`. Default 0.01.
   */
  driftFactor?: number;
}

/**
 * The client of the Redlock backend: several **independent** Redis servers (masters with no
 * replication between them; an odd number, 3 or 5). A lock is held when a majority granted it.
 *
 * @example
 * import { Redis } from 'ioredis';
 * const quorum = new RedisQuorum([new Redis(6379), new Redis(6380), new Redis(6381)]);
 * const lock = new RedlockLock('payouts', { client: quorum });
 */
export class RedisQuorum {
  readonly clients: readonly object[];
  readonly driftFactor: number;

  constructor(clients: readonly object[], options: RedisQuorumOptions = {}) {
    if (!Array.isArray(clients) || clients.length === 0) {
      throw new TypeError(
        messages.invalidOption('clients', clients, 'a non-empty array of ioredis Redis clients'),
      );
    }
    const { Redis } = ioredis();
    clients.forEach((client, i) => {
      if (!(client instanceof Redis)) {
        throw new TypeError(
          messages.invalidOption(
            `clients[${i}]`,
            client,
            'an ioredis Redis client (one per independent server; not a Cluster)',
          ),
        );
      }
    });
    const { driftFactor = 0.01 } = options;
    if (typeof driftFactor !== 'number' || !(driftFactor >= 0 && driftFactor < 0.5)) {
      throw new RangeError(
        messages.invalidOption('driftFactor', driftFactor, 'a number from 0 to 0.5'),
      );
    }
    this.clients = [...clients];
    this.driftFactor = driftFactor;
  }

  /** How many servers make a majority. */
  get quorum(): number {
    return Math.floor(this.clients.length / 2) + 1;
  }

  /** Closes every client (used for quorums this library created). */
  async quit(): Promise<void> {
    await Promise.allSettled(
      this.clients.map(async (c) => {
        const redis = c as RedisCommands;
        await settleWithin(redis.quit(), 1_000).catch(() => undefined);
        redis.disconnect(); // stops reconnecting a server that is down or refuses us
      }),
    );
  }
}

/** Options of a RedlockLock: the lock options and a `RedisQuorum`. */
export type RedlockLockOptions = BaseLockOptions;

type Vote = boolean | { error: unknown };

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

  private get quorum(): RedisQuorum {
    return this.client as RedisQuorum;
  }

  /** Each server gets a short deadline of its own, so one dead server cannot stall the vote. */
  private get serverDeadline(): number {
    const share = this.expire === null ? this.operationTimeout : Math.max(50, this.expire / 10);
    return Math.min(this.operationTimeout, share);
  }

  /**
   * Runs `command` on every server at once: true/false per server, or the error. Resolves as soon
   * as the answers decide it (a majority said yes, or so many said no that no majority can say
   * yes): a dead or slow server then costs nothing while the others agree. Otherwise it waits for
   * every server (each within its own deadline). Votes still out count as failures; their
   * commands finish in the background.
   */
  private vote(command: (client: QuorumCommands) => Promise<boolean>): Promise<Vote[]> {
    const { clients, quorum } = this.quorum;
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
        settleWithin(command(client as QuorumCommands), this.serverDeadline).then(
          (settled) =>
            settle(
              i,
              settled.kind === 'value' ? settled.value : { error: new Error('no answer in time') },
            ),
          (error: unknown) => settle(i, { error }),
        );
      });
    });
  }

  /** Counts the yes votes; throws when too many servers failed for a majority to be known. */
  private tally(votes: Vote[]): number {
    const failures = votes.filter((v): v is { error: unknown } => typeof v === 'object');
    const yes = votes.filter((v) => v === true).length;
    const { quorum } = this.quorum;
    if (yes < quorum && votes.length - failures.length < quorum) {
      throw new AggregateError(
        failures.map((f) => f.error),
        `only ${votes.length - failures.length} of ${votes.length} redis servers answered; a majority is ${quorum}`,
      );
    }
    return yes;
  }

  /** Whether a majority agreed soon enough for the lock to still be valid. */
  private valid(yes: number, startedAt: number, ttl: number | null): boolean {
    if (yes < this.quorum.quorum) return false;
    if (ttl === null) return true;
    const drift = ttl * this.quorum.driftFactor + 2;
    return ttl - (now() - startedAt) - drift > 0;
  }

  protected async _acquire(token: string): Promise<boolean> {
    const startedAt = now();
    const px = this.expire === null ? [] : ['PX', Math.ceil(this.expire)];
    const votes = await this.vote(
      async (c) => (await c.set(this.key, token, ...px, 'NX')) === 'OK',
    );
    let granted = false;
    try {
      granted = this.valid(this.tally(votes), startedAt, this.expire);
    } finally {
      // No majority (or too late): take back what we got, everywhere, before saying no.
      if (!granted) await this._release(token).catch(() => undefined);
    }
    return granted;
  }

  protected async _release(token: string): Promise<boolean> {
    const votes = await this.vote(async (c) => (await RELEASE.run(c, [this.key], [token])) === 1);
    return this.tally(votes) >= this.quorum.quorum;
  }

  protected override async _extend(token: string, ttl: number): Promise<boolean> {
    const startedAt = now();
    const votes = await this.vote(
      async (c) => (await EXTEND.run(c, [this.key], [token, String(Math.ceil(ttl))])) === 1,
    );
    return this.valid(this.tally(votes), startedAt, ttl);
  }

  protected async _locked(): Promise<boolean> {
    const votes = await this.vote(async (c) => (await c.exists(this.key)) === 1);
    return this.tally(votes) >= this.quorum.quorum;
  }

  /** Redlock retries after a random delay, so that competing clients do not move in step. */
  protected override async waitForRetry(ms: number, signal?: AbortSignal): Promise<void> {
    await sleep(ms * (0.5 + Math.random() / 2), signal);
  }
}

/** A quorum from a list of `redis://` URLs (or `{ servers, driftFactor }`). */
function connectQuorum(connection: unknown): RedisQuorum {
  const settings = checkConnection('redlock', connection ?? ['redis://127.0.0.1:6379']);
  const { servers, driftFactor } = (
    typeof settings === 'string' || Array.isArray(settings) ? { servers: settings } : settings
  ) as { servers?: unknown; driftFactor?: number };
  const urls = typeof servers === 'string' ? servers.split(',') : servers;
  if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => typeof u === 'string')) {
    throw new TypeError(
      messages.invalidOption(
        'connection',
        connection,
        'redis:// URLs of independent servers (a comma-separated string or an array)',
      ),
    );
  }
  const { Redis } = ioredis();
  const clients = urls.map((url) => new Redis((url as string).trim(), FAIL_FAST));
  return new RedisQuorum(clients, driftFactor === undefined ? {} : { driftFactor });
}

export const REDLOCK = backends.register({
  name: 'redlock',
  lockClass: RedlockLock,
  library: 'ioredis',
  clientClass: RedisQuorum,
  createClient: () => connectQuorum(undefined),
  connect: connectQuorum,
  closeClient: (quorum) => (quorum as RedisQuorum).quit(),
});
