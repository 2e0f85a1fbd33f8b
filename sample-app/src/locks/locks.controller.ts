import {
  Controller,
  ForbiddenException,
  Get,
  Header,
  HttpCode,
  Param,
  Post,
  Sse,
} from '@nestjs/common';
import { type LockInfo, LockService } from 'nestjs-sherlock';
import type { Observable } from 'rxjs';
import { LocksFeed, type LocksSnapshot } from './locks.feed.js';
import { LOCKS_PAGE } from './locks.page.js';

/**
 * The live lock page: `GET /locks` (plain HTML and a little script), fed by server-sent events
 * from `GET /locks/events`; `POST /locks/:name/force-release` only when the app runs with
 * `LOCKS_PAGE_FORCE_RELEASE=true` (403 otherwise). Protect this page as you would any admin page.
 */
@Controller('locks')
export class LocksController {
  constructor(
    private readonly feed: LocksFeed,
    private readonly locks: LockService,
  ) {}

  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Cache-Control', 'no-store')
  page(): string {
    return LOCKS_PAGE;
  }

  @Sse('events')
  events(): Observable<{ data: LocksSnapshot }> {
    return this.feed.stream();
  }

  @Get('snapshot')
  snapshot(): Promise<LocksSnapshot> {
    return this.feed.snapshot();
  }

  @Post(':name/force-release')
  @HttpCode(200)
  async forceRelease(@Param('name') name: string): Promise<{ removed: LockInfo | null }> {
    if (!this.feed.forceReleaseEnabled) {
      throw new ForbiddenException('Force-release is off: set LOCKS_PAGE_FORCE_RELEASE=true');
    }
    return { removed: await this.locks.forceRelease(name) };
  }
}
