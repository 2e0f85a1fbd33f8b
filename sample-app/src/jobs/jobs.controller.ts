import { Controller, Get } from '@nestjs/common';
import { CleanupJob, type CleanupStats } from './cleanup.job.js';

@Controller('jobs')
export class JobsController {
  constructor(private readonly cleanup: CleanupJob) {}

  /** How often the cleanup job ran on this instance (the other replicas skipped those ticks). */
  @Get('cleanup')
  cleanupStats(): CleanupStats {
    return this.cleanup.stats();
  }
}
