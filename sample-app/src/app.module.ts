import { Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { ScheduleModule } from '@nestjs/schedule';
import { SherlockModule } from 'nestjs-sherlock';
import { AccountsModule } from './accounts/accounts.module.js';
import { DigestModule } from './digest/digest.module.js';
import { JobsModule } from './jobs/jobs.module.js';
import { LocksModule } from './locks/locks.module.js';
import { OrdersModule } from './orders/orders.module.js';
import { ReportsModule } from './reports/reports.module.js';
import { sherlockOptions } from './sherlock.options.js';

@Module({
  imports: [
    // Reads the environment (and a .env file, if any).
    ConfigModule.forRoot({ isGlobal: true }),
    // One registration for the whole app: `isGlobal` lets every feature module inject
    // LockService and use @Locked without importing SherlockModule again.
    SherlockModule.forRootAsync({
      isGlobal: true,
      inject: [ConfigService],
      useFactory: sherlockOptions,
    }),
    ScheduleModule.forRoot(),
    AccountsModule,
    OrdersModule,
    JobsModule,
    // The leader-only digest job, where the backend can elect a leader (see the module).
    DigestModule,
    ReportsModule,
    LocksModule,
  ],
})
export class AppModule {}
