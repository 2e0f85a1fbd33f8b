import {
  ConflictException,
  Controller,
  DefaultValuePipe,
  Get,
  ParseIntPipe,
  Post,
  Query,
} from '@nestjs/common';
import { type Report, ReportsService } from './reports.service.js';

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

  @Get('status')
  async status(): Promise<{ generating: boolean }> {
    return { generating: await this.reports.isGenerating() };
  }
}
