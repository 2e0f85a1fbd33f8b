import {
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type {
  LeaderElection,
  LeaderElectionEvents,
  LeaderInfo,
  Leadership,
} from '../core/leader-election.js';

/**
 * One leader election of the application (`LeaderElectionModule`): ask whether this replica
 * leads, who does, and listen for elected / lost. With `campaign: true` (the default) it campaigns
 * when the application has started, campaigns again after every loss, and resigns when the
 * application shuts down (`app.close()`, or a signal with `app.enableShutdownHooks()`), so that a
 * rolling deploy hands the leadership over at once instead of after the lease.
 *
 * @example
 * constructor(private readonly leader: LeaderService) {
 *   leader.on('elected', ({ term }) => this.logger.log(`leading, term ${term}`));
 * }
 * status() { return { leader: this.leader.isLeader() }; }
 */
@Injectable()
export class LeaderService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('LeaderElection');
  private readonly onError = (error: Error) =>
    this.logger.warn(`election '${this.election.name}': ${error.message}`);
  private readonly onElected = ({ term }: Leadership) =>
    this.logger.log(`election '${this.election.name}': this replica leads (term ${term})`);
  private readonly onLost = ({ term, reason, error }: LeaderElectionEvents['lost'][0]) => {
    if (reason === 'lost') {
      this.logger.warn(
        `election '${this.election.name}': leadership of term ${term} lost: ${error.message}`,
      );
    }
  };

  constructor(
    /** The election itself (core API: `observe()`, `leader()`, `campaign()`, ...). */
    readonly election: LeaderElection,
    /** Whether this service campaigns at bootstrap (and again after a loss). */
    readonly campaigns: boolean,
  ) {
    election.on('error', this.onError);
    election.on('elected', this.onElected);
    election.on('lost', this.onLost);
  }

  /** Whether this replica leads now. */
  isLeader(): boolean {
    return this.election.isLeader;
  }

  /** This replica's leadership while it leads (its `term` and `signal`), else `null`. */
  get leadership(): Leadership | null {
    return this.election.leadership;
  }

  /** Who leads now (any replica), as it published itself, or `null`. Asks the server. */
  leader(): Promise<LeaderInfo | null> {
    return this.election.leader();
  }

  /** Resolves when this replica leads (see `LeaderElection.campaign`). */
  campaign(options?: { signal?: AbortSignal }): Promise<Leadership> {
    return this.election.campaign(options);
  }

  /** Hands the leadership over at once and stops campaigning (see `LeaderElection.resign`). */
  resign(): Promise<boolean> {
    return this.election.resign();
  }

  /** Who leads, and each change (see `LeaderElection.observe`). */
  observe(options?: { signal?: AbortSignal }): AsyncGenerator<LeaderInfo | null> {
    return this.election.observe(options);
  }

  /** Listens for `'elected'`, `'lost'` (this replica), `'change'` (who leads) or `'error'`. */
  on<E extends keyof LeaderElectionEvents>(
    event: E,
    listener: (...args: LeaderElectionEvents[E]) => void,
  ): this {
    this.election.on(event, listener);
    return this;
  }

  off<E extends keyof LeaderElectionEvents>(
    event: E,
    listener: (...args: LeaderElectionEvents[E]) => void,
  ): this {
    this.election.off(event, listener);
    return this;
  }

  /** Campaigns in the background once every module is initialised (with `campaign: true`). */
  onApplicationBootstrap(): void {
    if (this.campaigns) this.election.start();
  }

  /** Resigns (the next replica is woken at once) and stops campaigning, before connections close. */
  async beforeApplicationShutdown(): Promise<void> {
    const wasLeader = this.election.isLeader;
    await this.election.close();
    if (wasLeader) this.logger.log(`election '${this.election.name}': resigned at shutdown`);
    this.election.off('error', this.onError);
    this.election.off('elected', this.onElected);
    this.election.off('lost', this.onLost);
  }
}
