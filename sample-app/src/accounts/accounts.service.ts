import { setTimeout as delay } from 'node:timers/promises';
import {
  BadRequestException,
  Inject,
  Injectable,
  NotFoundException,
  UnprocessableEntityException,
} from '@nestjs/common';
import { Locked } from 'nestjs-sherlock';
import { AccountStore } from './account.store.js';

/**
 * The injection token of the pause (ms) between reading the balances and writing them in a
 * transfer (`TRANSFER_PAUSE_MS`, default 10): the work a real transfer does there (checks,
 * fees, a call to a payment provider). It widens the read-modify-write window so that the lost
 * updates of the unlocked endpoint show every time, not only under load.
 */
export const TRANSFER_PAUSE_MS = 'TRANSFER_PAUSE_MS';

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
  constructor(
    private readonly store: AccountStore,
    @Inject(TRANSFER_PAUSE_MS) private readonly pauseMs: number,
  ) {}

  async get(id: string): Promise<Account> {
    return { id, balance: await this.balanceOf(id) };
  }

  /**
   * Moves `amount` from one account to another. The read-modify-write below is not atomic, so it
   * runs holding the distributed locks of BOTH accounts, `account:<from>` and `account:<to>`:
   * no other transfer touching either account runs meanwhile, on any replica that shares the
   * lock backend, while transfers between other accounts run in parallel.
   *
   * Locking only one of the two accounts would be wrong (alice→bob and carol→alice would both
   * write alice's balance at once), and so would a lock per account pair. Taking the two locks
   * one by one could deadlock (alice→bob holds alice and waits for bob while bob→alice holds bob
   * and waits for alice). A name function returning an array takes both as one MultiLock: every
   * lock or none, always in the same (sorted) order whatever the argument order, within one
   * `timeout` for the pair. So opposite transfers cannot deadlock.
   *
   * `@Locked` works on any provider method. If the locks cannot be had within `timeout` the call
   * rejects with LockTimeoutError; the module maps it wherever the lock was taken, so an HTTP
   * client gets 409 `LOCK_TIMEOUT` (and 503 if the lock server is down): see docs/errors.md.
   */
  @Locked((from: string, to: string) => [`account:${from}`, `account:${to}`])
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
    if (this.pauseMs > 0) await delay(this.pauseMs);
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
