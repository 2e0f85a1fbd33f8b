import { type DynamicModule, Module } from '@nestjs/common';
import type { LeaderElectionOptions } from '../core/leader-election.js';
import { checkKeys } from '../core/options.js';
import { messages } from '../core/messages.js';
import { getLeaderServiceToken } from './leader.constants.js';
import { LeaderService } from './leader.service.js';
import type { LockService } from './lock.service.js';
import { getLockServiceToken } from './sherlock.constants.js';

/** What `LeaderElectionModule.forRoot()` takes. */
export interface LeaderElectionModuleOptions extends LeaderElectionOptions {
  /**
   * The election's name on the server, shared by every replica that should elect one leader.
   * Default: `'leader'`.
   */
  election?: string;
  /**
   * The name this election is injected under (`@InjectLeaderService(name)`,
   * `@LeaderOnly(name)`); leave it out for the application's one election.
   */
  name?: string;
  /** The `SherlockModule` registration whose backend holds the election. Default: the unnamed one. */
  registration?: string;
  /**
   * Campaign when the application has started (and again after every loss), resign when it
   * shuts down. `false`: call `campaign()` / `resign()` yourself. Default `true`.
   */
  campaign?: boolean;
  /** Make `LeaderService` injectable everywhere. Default `false`. */
  isGlobal?: boolean;
}

const MODULE_KEYS = [
  'election',
  'name',
  'registration',
  'campaign',
  'isGlobal',
  'namespace',
  'expire',
  'renewEvery',
  'retryInterval',
  'operationTimeout',
  'id',
  'metadata',
  'observeInterval',
];

function checkName(option: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(messages.invalidOption(option, value, 'a non-empty string'));
  }
  return value;
}

/**
 * Leader election for a Nest application, on the backend of a `SherlockModule` registration:
 * provides `LeaderService` and makes `@LeaderOnly` work. Every replica campaigns at start (one
 * leads at a time), campaigns again after a loss, and resigns at shutdown so that a rolling
 * deploy hands over at once. Options are checked when the application starts (a bad one fails
 * the start with an error naming it; a backend without elections with `UnsupportedFeatureError`).
 *
 * @example
 * @Module({
 *   imports: [
 *     SherlockModule.forRoot({ backend: 'redis', connection: process.env.REDIS_URL, isGlobal: true }),
 *     LeaderElectionModule.forRoot({ election: 'scheduler', expire: 10_000, isGlobal: true }),
 *     ScheduleModule.forRoot(),
 *   ],
 * })
 * export class AppModule {}
 */
@Module({})
export class LeaderElectionModule {
  static forRoot(options: LeaderElectionModuleOptions = {}): DynamicModule {
    checkKeys(options, 'LeaderElectionModule options', MODULE_KEYS);
    const { election, name, registration, campaign, isGlobal, ...electionOptions } = options;
    const electionName = checkName('election', election) ?? 'leader';
    const token = getLeaderServiceToken(checkName('name', name));
    const registrationName = checkName('registration', registration);
    if (campaign !== undefined && typeof campaign !== 'boolean') {
      throw new TypeError(messages.invalidOption('campaign', campaign, 'true or false'));
    }
    if (isGlobal !== undefined && typeof isGlobal !== 'boolean') {
      throw new TypeError(messages.invalidOption('isGlobal', isGlobal, 'true or false'));
    }
    return {
      module: LeaderElectionModule,
      global: isGlobal ?? false,
      providers: [
        {
          provide: token,
          // Built at bootstrap, from the registration's manager: the election checks its options
          // and the backend (a bad option, or a backend without elections, fails the start).
          useFactory: (locks: LockService) =>
            new LeaderService(
              locks.manager.election(electionName, electionOptions),
              campaign ?? true,
            ),
          inject: [getLockServiceToken(registrationName)],
        },
      ],
      exports: [token],
    };
  }
}
