import {
  BadRequestException,
  Injectable,
  NotFoundException,
  UnprocessableEntityException,
} from '@nestjs/common';
import { Locked } from 'nestjs-sherlock';
import { AccountStore } from './account.store.js';

/** An account and its balance. */
export interface Account {
  id: string;
  balance: number;
}

/** The two accounts after a transfer. */
export interface TransferResult {
  from: Account;
  to: Account;
}

@Injectable()
export class AccountsService {
  constructor(private readonly store: AccountStore) {}

  async get(id: string): Promise<Account> {
    return { id, balance: await this.balanceOf(id) };
  }

  /**
   * Moves `amount` from one account to another. The read-modify-write below is not atomic, so
   * the whole method runs under the distributed lock 'accounts': one transfer at a time across
   * every replica of the app that shares the lock backend.
   *
   * One lock for all accounts is the simple, correct choice. A lock per account *pair* would be
   * wrong (alice→bob and carol→alice would both write alice's balance at once); finer locking
   * means one lock per account, taken in a fixed order to avoid deadlocks.
   *
   * `@Locked` works on any provider method. Outside an HTTP handler a busy lock is not turned
   * into a 409: if the lock cannot be had within `timeout` the call rejects with
   * LockTimeoutError (which reaches the client as a 500, like any unexpected error).
   */
  @Locked('accounts')
  async transfer(from: string, to: string, amount: number): Promise<TransferResult> {
    return this.move(from, to, amount);
  }

  /**
   * DEMONSTRATION ONLY: the same transfer without the lock. Concurrent calls lose updates (each
   * reads a balance another call is about to overwrite), so balances no longer add up.
   */
  async transferUnsafe(from: string, to: string, amount: number): Promise<TransferResult> {
    return this.move(from, to, amount);
  }

  private async move(from: string, to: string, amount: number): Promise<TransferResult> {
    if (from === to) throw new BadRequestException('Cannot transfer to the same account');
    const fromBalance = await this.balanceOf(from);
    const toBalance = await this.balanceOf(to);
    if (fromBalance < amount) {
      throw new UnprocessableEntityException(`Insufficient funds in account '${from}'`);
    }
    await this.store.setBalance(from, fromBalance - amount);
    await this.store.setBalance(to, toBalance + amount);
    return {
      from: { id: from, balance: fromBalance - amount },
      to: { id: to, balance: toBalance + amount },
    };
  }

  private async balanceOf(id: string): Promise<number> {
    const balance = await this.store.balance(id);
    if (balance === undefined) throw new NotFoundException(`No account '${id}'`);
    return balance;
  }
}
