import { Module } from '@nestjs/common';
import { CleanupJob } from './cleanup.job.js';
import { JobsController } from './jobs.controller.js';

@Module({
  controllers: [JobsController],
  providers: [CleanupJob],
})
export class JobsModule {}
