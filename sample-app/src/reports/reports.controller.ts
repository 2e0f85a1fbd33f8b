import {
  ConflictException,
  Controller,
  DefaultValuePipe,
  Get,
  HttpException,
  HttpStatus,
  NotImplementedException,
  ParseIntPipe,
  Post,
  Query,
} from '@nestjs/common';
import { UnsupportedFeatureError } from 'nestjs-sherlock';
import { type Export, type Report, ReportsService } from './reports.service.js';

@Controller('reports')
export class ReportsController {
  constructor(private readonly reports: ReportsService) {}

  /** Generates a report (taking `?ms=`, default 500); 409 while another one is in progress. */
  @Post()
  async generate(
    @Query('ms', new DefaultValuePipe(500), ParseIntPipe) ms: number,
  ): Promise<Report> {
    const report = await this.reports.generate(Math.min(Math.max(ms, 0), 10_000));
    if (!report) throw new ConflictException('A report is already being generated');
    return report;
  }

  /**
   * Exports a report (taking `?ms=`, default 500): at most 2 exports run at once over every
   * replica; a request waits up to `?wait=` ms (default 2000) for a turn, then gets 429.
   */
  @Post('exports')
  async export(
    @Query('ms', new DefaultValuePipe(500), ParseIntPipe) ms: number,
    @Query('wait', new DefaultValuePipe(2_000), ParseIntPipe) wait: number,
  ): Promise<Export> {
    let done: Export | null;
    try {
      done = await this.reports.export(
        Math.min(Math.max(ms, 0), 10_000),
        Math.min(Math.max(wait, 0), 30_000),
      );
    } catch (err) {
      // Memcached cannot hold a semaphore safely: say so rather than run unlimited.
      if (err instanceof UnsupportedFeatureError) throw new NotImplementedException(err.message);
      throw err;
    }
    if (!done) {
      throw new HttpException(
        'Too many exports in progress; try again later',
        HttpStatus.TOO_MANY_REQUESTS,
      );
    }
    return done;
  }

  @Get('status')
  async status(): Promise<{ generating: boolean }> {
    return { generating: await this.reports.isGenerating() };
  }
}
