import { LeaderService } from './leader.service.js';

/** Metadata key under which `@LeaderOnly()` records its election on the method. */
export const LEADER_ONLY_METADATA = 'sherlock:leader-only';

/**
 * The injection token of an election's `LeaderService`: the `LeaderService` class itself for the
 * unnamed one (`LeaderElectionModule.forRoot()` without `name`), a string for named ones.
 */
export function getLeaderServiceToken(name?: string): string | typeof LeaderService {
  return name === undefined ? LeaderService : `SherlockLeaderService:${name}`;
}

/** The hidden property under which Nest injects an election's `LeaderService` (`@LeaderOnly`). */
export function leaderServiceProperty(name: string | undefined): symbol {
  return Symbol.for(`nestjs-sherlock:leader-service:${name ?? ''}`);
}
