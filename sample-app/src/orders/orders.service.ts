import { Injectable } from '@nestjs/common';
import { setTimeout as delay } from 'node:timers/promises';

/** What processing an order returns. */
export interface ProcessedOrder {
  id: string;
  status: 'processed';
  /** How many times this app instance has processed this order. */
  times: number;
}

@Injectable()
export class OrdersService {
  private readonly processed = new Map<string, number>();

  /** Processes an order; takes `ms` milliseconds (a payment provider, a warehouse API...). */
  async process(id: string, ms: number): Promise<ProcessedOrder> {
    await delay(ms);
    const times = (this.processed.get(id) ?? 0) + 1;
    this.processed.set(id, times);
    return { id, status: 'processed', times };
  }
}
