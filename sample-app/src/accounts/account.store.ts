import { setTimeout as delay } from 'node:timers/promises';

/**
 * Where the balances live: a database in a real app. An abstract class is both the type and the
 * injection token (`constructor(private readonly store: AccountStore)`), so a test or another
 * environment swaps the implementation with `{ provide: AccountStore, useValue: ... }` or
 * `.overrideProvider(AccountStore)`.
 */
export abstract class AccountStore {
  /** The balance of `id`, or `undefined` if there is no such account. */
  abstract balance(id: string): Promise<number | undefined>;
  /** Overwrites the balance of `id`. */
  abstract setBalance(id: string, balance: number): Promise<void>;
}

/** The accounts a fresh app starts with. */
export const DEMO_ACCOUNTS: Readonly<Record<string, number>> = {
  alice: 1_000,
  bob: 1_000,
  carol: 1_000,
  dave: 1_000,
};

/**
 * An in-memory store that behaves like a remote one: every read and write takes `latencyMs`, and
 * nothing makes a read-then-write atomic. Two transfers that interleave both read the same
 * balance and the second write overwrites the first: a lost update. That is the race a lock
 * prevents (a real database would offer transactions or atomic increments; many stores, caches
 * and third-party APIs do not).
 */
export class InMemoryAccountStore extends AccountStore {
  private readonly balances: Map<string, number>;

  constructor(
    opening: Readonly<Record<string, number>> = DEMO_ACCOUNTS,
    private readonly latencyMs = 5,
  ) {
    super();
    this.balances = new Map(Object.entries(opening));
  }

  async balance(id: string): Promise<number | undefined> {
    const balance = this.balances.get(id);
    await delay(this.latencyMs); // the answer travels back: it may be stale on arrival
    return balance;
  }

  async setBalance(id: string, balance: number): Promise<void> {
    await delay(this.latencyMs);
    this.balances.set(id, balance);
  }
}
