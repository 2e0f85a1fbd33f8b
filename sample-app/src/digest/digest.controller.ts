import { Controller, Get, Inject } from '@nestjs/common';
import { LockService } from 'nestjs-sherlock';
import type { DigestJob, DigestStats } from './digest.job.js';
import { electionUnsupported } from './election-support.js';

/** The token of the digest job: `null` where the backend cannot elect a leader. */
export const DIGEST_JOB = Symbol('DIGEST_JOB');

@Controller('jobs')
export class DigestController {
  constructor(
    @Inject(DIGEST_JOB) private readonly job: DigestJob | null,
    private readonly locks: LockService,
  ) {}

  /** Whether this replica leads and how often the digest ran here (or why it is disabled). */
  @Get('digest')
  digestStats(): DigestStats {
    if (this.job) return this.job.stats();
    return {
      enabled: false,
      reason: electionUnsupported(this.locks) ?? 'no election',
      leader: false,
      term: null,
      runs: 0,
      recent: [],
    };
  }
}
