import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { Cron, CronExpression } from '@nestjs/schedule';
import { InjectLeaderService, LeaderOnly, LeaderService } from 'nestjs-sherlock';

/**
 * When the digest runs, from `DIGEST_CRON` (a six-field cron expression; every minute by
 * default). Read from `process.env` directly: decorator arguments are evaluated when the class
 * is loaded, before ConfigModule has run.
 */
export const DIGEST_CRON = process.env['DIGEST_CRON'] ?? CronExpression.EVERY_MINUTE;

/** How many recent runs `stats()` reports. */
const RECENT_RUNS = 10;

/** One run of the digest on this replica. */
export interface DigestRun {
  /** ISO time the run started. */
  at: string;
  /** The leadership's term: the fencing token to send with the digest's writes. */
  term: string;
}

/** What `GET /jobs/digest` answers on a replica. */
export interface DigestStats {
  /** Whether this replica runs the leader-only digest at all (its backend can elect). */
  enabled: boolean;
  /** Why not, when `enabled` is false. */
  reason?: string;
  /** Whether this replica leads now (the one that runs the digest). */
  leader: boolean;
  /** This replica's term while it leads. */
  term: string | null;
  /** Runs on this replica. */
  runs: number;
  /** Its last runs, oldest first. */
  recent: DigestRun[];
}

/**
 * A "metrics rollup / daily digest" that must run on exactly one replica: with `@LeaderOnly`,
 * every replica's scheduler fires at each tick but only the replica that leads the election
 * runs it; the others return at once. Unlike the @Locked cleanup job (`src/jobs/`), where the
 * replicas race for a lock at every tick, the leader is elected once and keeps running the job
 * tick after tick, until it shuts down (it resigns: another replica leads at once) or dies
 * (another one leads when its lease runs out).
 */
@Injectable()
export class DigestJob implements OnModuleInit {
  private readonly logger = new Logger(DigestJob.name);
  private runs = 0;
  private readonly recent: DigestRun[] = [];

  constructor(@InjectLeaderService() private readonly leader: LeaderService) {}

  onModuleInit(): void {
    this.leader.on('elected', ({ term }) =>
      this.logger.log(`Leading the digest election (term ${term}): the digest runs here`),
    );
    this.leader.on('lost', ({ term, reason }) =>
      this.logger.log(`No longer leading the digest election (term ${term}, ${reason})`),
    );
  }

  @LeaderOnly()
  @Cron(DIGEST_CRON, { name: 'digest' })
  async digest(): Promise<void> {
    // While the method runs, `leadership.signal` aborts if the leadership is lost: pass it to
    // long work, and send `term` with every write so that a store can refuse a stale leader's.
    const { term } = this.leader.leadership ?? { term: '?' };
    this.runs += 1;
    this.recent.push({ at: new Date().toISOString(), term });
    if (this.recent.length > RECENT_RUNS) this.recent.shift();
    // Real work goes here: roll the last period's metrics up, send the daily digest email, ...
    this.logger.log(`Digest run #${this.runs} on this replica (term ${term})`);
  }

  stats(): DigestStats {
    return {
      enabled: true,
      leader: this.leader.isLeader(),
      term: this.leader.leadership?.term ?? null,
      runs: this.runs,
      recent: [...this.recent],
    };
  }
}
