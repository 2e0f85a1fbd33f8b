import { Module } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { AccountStore, InMemoryAccountStore } from './account.store.js';
import { AccountsController } from './accounts.controller.js';
import { AccountsService, TRANSFER_PAUSE_MS } from './accounts.service.js';
import { RedisAccountStore } from './redis-account.store.js';

/**
 * Where the balances live, from the environment: `ACCOUNTS_STORE=redis` keeps them in Redis
 * (`ACCOUNTS_REDIS_URL`, default `REDIS_URL`), shared by every replica, as a real deployment
 * shares its database; `memory` (the default) keeps them in the process (one replica only; the
 * e2e tests share one store between app instances with `overrideProvider(AccountStore)`).
 */
function accountStore(config: ConfigService): AccountStore {
  const kind = config.get<string>('ACCOUNTS_STORE', 'memory').trim().toLowerCase();
  if (kind === 'memory') return new InMemoryAccountStore();
  if (kind !== 'redis') {
    throw new RangeError(`Invalid ACCOUNTS_STORE: got '${kind}', expected 'memory' or 'redis'`);
  }
  const url =
    config.get<string>('ACCOUNTS_REDIS_URL') ??
    config.get<string>('REDIS_URL') ??
    'redis://127.0.0.1:6379';
  return new RedisAccountStore(url, `${config.get<string>('SHERLOCK_NAMESPACE', 'sample')}:`);
}

@Module({
  controllers: [AccountsController],
  providers: [
    AccountsService,
    { provide: AccountStore, useFactory: accountStore, inject: [ConfigService] },
    {
      provide: TRANSFER_PAUSE_MS,
      useFactory: (config: ConfigService): number => {
        const value = config.get<string>('TRANSFER_PAUSE_MS', '10');
        const pause = Number(value);
        if (!Number.isFinite(pause) || pause < 0) {
          throw new RangeError(`Invalid TRANSFER_PAUSE_MS: got '${value}', expected ms >= 0`);
        }
        return pause;
      },
      inject: [ConfigService],
    },
  ],
})
export class AccountsModule {}
