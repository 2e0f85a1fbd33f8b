import { Injectable, Logger } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { Locked } from 'nestjs-sherlock';

/**
 * When the cleanup runs, from `CLEANUP_CRON` (a six-field cron expression; every 10 s by
 * default). Decorator arguments are evaluated when the class is loaded, before ConfigModule has
 * run, so this one reads `process.env` directly.
 */
export const CLEANUP_CRON = process.env['CLEANUP_CRON'] ?? CronExpression.EVERY_10_SECONDS;

/** How many recent run times `stats()` reports. */
const RECENT_RUNS = 10;

/** What `GET /jobs/cleanup` answers: the runs of the job on this instance. */
export interface CleanupStats {
  runs: number;
  /** ISO times of the last runs on this instance, oldest first. */
  recent: string[];
}

/**
 * A scheduled job that must run once per tick across all replicas, not once per replica.
 *
 * Every replica's scheduler fires at the same tick; the first one to take the lock runs the job
 * and the others skip it (`wait: false, onBusy: 'skip'`: no error, no waiting). `atLeastFor`
 * keeps the lock for 900 ms even when the job is done sooner, so a replica whose clock or event
 * loop is a little late still finds it taken. Keep it longer than the clock skew between your
 * replicas and shorter than the interval between two ticks.
 */
@Injectable()
export class CleanupJob {
  private readonly logger = new Logger(CleanupJob.name);
  private runs = 0;
  private readonly recent: Date[] = [];

  // @Locked wraps the method itself, so it works on @Cron jobs, where no interceptor runs; the
  // order of the two decorators does not matter.
  @Locked('jobs:cleanup', { wait: false, onBusy: 'skip', atLeastFor: 900 })
  @Cron(CLEANUP_CRON, { name: 'cleanup' })
  async cleanup(): Promise<void> {
    this.runs += 1;
    this.recent.push(new Date());
    if (this.recent.length > RECENT_RUNS) this.recent.shift();
    // Real work goes here: purge expired sessions, send pending emails, ...
    this.logger.log(`Cleanup run #${this.runs} on this instance`);
  }

  stats(): CleanupStats {
    return { runs: this.runs, recent: this.recent.map((date) => date.toISOString()) };
  }
}
