import { Module } from '@nestjs/common';
import { AccountStore, InMemoryAccountStore } from './account.store.js';
import { AccountsController } from './accounts.controller.js';
import { AccountsService } from './accounts.service.js';

@Module({
  controllers: [AccountsController],
  providers: [
    AccountsService,
    // Per process. Replace it with a shared database in a real deployment (the e2e tests
    // override it with one store shared by two app instances).
    { provide: AccountStore, useFactory: () => new InMemoryAccountStore() },
  ],
})
export class AccountsModule {}
