import { Logger, Module } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { LeaderService, LockService } from 'nestjs-sherlock';
import { DIGEST_JOB, DigestController } from './digest.controller.js';
import { DigestJob } from './digest.job.js';
import { electionUnsupported } from './election-support.js';

/** The leader's lease when `DIGEST_LEASE_MS` is unset: a dead leader is replaced after this. */
const DEFAULT_LEASE_MS = 15_000;

/**
 * The leader-only digest job, wired at run time from the configured backend.
 *
 * A leader election needs a backend that can hold one (Redis, Etcd, Memory: a lease it renews
 * and a term that strictly grows). On one that cannot (Memcached: its counter may reset, so a
 * new leader could get an older term than a stale one) `LeaderElectionModule` refuses to start
 * with an `UnsupportedFeatureError`. This app keeps starting instead: the digest job is left out
 * (one warning says why; `GET /jobs/digest` answers `enabled: false`). We chose to disable it
 * rather than fall back to a @Locked cron because the two promise different things: a leader
 * runs the job tick after tick and a stale one is fenced by its term, while a lock per tick only
 * keeps two replicas from running the same tick (that pattern, which works on every backend, is
 * the cleanup job of `src/jobs/`).
 *
 * The choice is made when the app is created (the providers' factories below), from the backend
 * the SherlockModule was configured with, so one build runs on every backend. On a deployment
 * whose backend always elects, the plain wiring is one line:
 * `LeaderElectionModule.forRoot({ election: 'digest', expire })` and `DigestJob` as a provider.
 */
@Module({
  controllers: [DigestController],
  providers: [
    {
      // What `LeaderElectionModule.forRoot()` provides (@LeaderOnly() and @InjectLeaderService()
      // use this token), built here only where the backend can elect. With `true`, it campaigns
      // once the app has started (and again after a loss) and resigns when the app shuts down
      // (SIGTERM, with app.enableShutdownHooks() in main.ts), so a rolling deploy hands the job
      // over at once instead of after the lease.
      provide: LeaderService,
      inject: [LockService],
      useFactory: (locks: LockService): LeaderService | null => {
        const unsupported = electionUnsupported(locks);
        if (unsupported !== undefined) {
          new Logger('DigestModule').warn(`Leader-only digest job disabled: ${unsupported}`);
          return null;
        }
        const election = locks.manager.election('digest', {
          expire: Number(process.env['DIGEST_LEASE_MS'] ?? DEFAULT_LEASE_MS),
          metadata: { app: process.env['SHERLOCK_APP_NAME'] ?? 'sample-app' },
        });
        return new LeaderService(election, true);
      },
    },
    {
      // The job only where there is an election: without a provider instance, its @Cron is
      // never scheduled. `ModuleRef.create` builds it as Nest builds a provider (its injections,
      // including the one @LeaderOnly adds).
      provide: DIGEST_JOB,
      inject: [ModuleRef, LeaderService],
      useFactory: (moduleRef: ModuleRef, leader: LeaderService | null) =>
        leader ? moduleRef.create(DigestJob) : null,
    },
  ],
})
export class DigestModule {}
