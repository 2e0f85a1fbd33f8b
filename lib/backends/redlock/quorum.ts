import { messages } from '../../core/messages.js';
import { settleWithin } from '../../core/timing.js';
import { ioredis, type RedisCommands } from '../redis/scripts.js';

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
