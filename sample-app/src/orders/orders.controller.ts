import { Controller, DefaultValuePipe, Param, ParseIntPipe, Post, Query } from '@nestjs/common';
import { Locked } from 'nestjs-sherlock';
import { OrdersService, type ProcessedOrder } from './orders.service.js';

/** Longest processing time a caller may ask for with `?ms=`. */
const MAX_PROCESSING_MS = 5_000;

@Controller('orders')
export class OrdersController {
  constructor(private readonly orders: OrdersService) {}

  /**
   * Processes order `id`, at most once at a time per order across all replicas. `@Locked` on a
   * handler receives the handler's arguments after pipes, so the name function builds one lock
   * per order: `order:7` and `order:8` are processed in parallel.
   *
   * `wait: false`: a second request for an order being processed does not queue behind the
   * first; it gets 409 Conflict at once, with a JSON body naming the lock (`code: 'LOCK_BUSY'`)
   * and, when the backend reports the holder's time left, a Retry-After header. `?ms=` sets how long processing takes (default 300 ms), to try it out:
   *
   *   curl -X POST 'localhost:3000/orders/7/process?ms=3000' & curl -i -X POST localhost:3000/orders/7/process
   */
  @Post(':id/process')
  @Locked((id: string) => `order:${id}`, { wait: false })
  process(
    @Param('id') id: string,
    @Query('ms', new DefaultValuePipe(300), ParseIntPipe) ms: number,
  ): Promise<ProcessedOrder> {
    return this.orders.process(id, Math.min(Math.max(ms, 0), MAX_PROCESSING_MS));
  }
}
