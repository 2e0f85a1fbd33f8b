import type { OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { Redis } from 'ioredis';
import { AccountStore, DEMO_ACCOUNTS } from './account.store.js';

/**
 * The balances in Redis, shared by every replica of the app: one string key per account,
 * `<prefix>accounts:<id>`. Reads and writes are plain GET and SET, so a read followed by a write
 * is no more atomic than with any remote store: two replicas running the same transfer at once
 * both read the same balance and the second write overwrites the first. Only the distributed
 * lock (around `AccountsService.transfer`) keeps the books right, across replicas.
 */
export class RedisAccountStore extends AccountStore implements OnModuleInit, OnApplicationShutdown {
  private readonly redis: Redis;

  constructor(
    url: string,
    private readonly prefix: string,
    private readonly opening: Readonly<Record<string, number>> = DEMO_ACCOUNTS,
  ) {
    super();
    this.redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  }

  /** Connects and opens the demo accounts that do not exist yet (SET NX: once for all replicas). */
  async onModuleInit(): Promise<void> {
    await this.redis.connect();
    for (const [id, balance] of Object.entries(this.opening)) {
      await this.redis.set(this.key(id), balance, 'NX');
    }
  }

  async onApplicationShutdown(): Promise<void> {
    await this.redis.quit();
  }

  async balance(id: string): Promise<number | undefined> {
    const value = await this.redis.get(this.key(id));
    return value === null ? undefined : Number(value);
  }

  async setBalance(id: string, balance: number): Promise<void> {
    await this.redis.set(this.key(id), balance);
  }

  private key(id: string): string {
    return `${this.prefix}accounts:${id}`;
  }
}
