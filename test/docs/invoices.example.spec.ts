/**
 * The example test of docs/testing.md (shown there byte for byte): a service that uses @Locked and
 * LockService, unit-tested with Nest's testing module on the memory backend.
 */
import { Injectable } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { Locked, LockService, MemoryStore, SherlockModule } from 'nestjs-sherlock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

@Injectable()
export class InvoicesService {
  private running = 0;
  /** The most calls that ever ran at once. */
  mostAtOnce = 0;

  @Locked((customerId: string) => `invoices:${customerId}`)
  async issue(customerId: string): Promise<string> {
    this.running += 1;
    this.mostAtOnce = Math.max(this.mostAtOnce, this.running);
    await new Promise((resolve) => setTimeout(resolve, 20)); // a slow write
    this.running -= 1;
    return `invoice for ${customerId}`;
  }
}

describe('InvoicesService', () => {
  let moduleRef: TestingModule;
  let invoices: InvoicesService;
  let locks: LockService;

  beforeEach(async () => {
    moduleRef = await Test.createTestingModule({
      // The memory backend with a store of this test's own: no server, and no lock shared with
      // the other tests of the same process. (@Locked works right after compile().)
      imports: [SherlockModule.forRoot({ backend: 'memory', client: new MemoryStore() })],
      providers: [InvoicesService],
    }).compile();
    invoices = moduleRef.get(InvoicesService);
    locks = moduleRef.get(LockService);
  });

  // Releases what is still held, as the app does at shutdown.
  afterEach(() => moduleRef.close());

  it('issues one invoice at a time per customer', async () => {
    const issued = await Promise.all([1, 2, 3].map(() => invoices.issue('c1')));
    expect(issued).toEqual(['invoice for c1', 'invoice for c1', 'invoice for c1']);
    expect(invoices.mostAtOnce).toBe(1);
  });

  it('does not hold up another customer', async () => {
    await Promise.all([invoices.issue('c1'), invoices.issue('c2')]);
    expect(invoices.mostAtOnce).toBe(2);
  });

  it('waits while another replica holds the lock', async () => {
    const held = await locks.acquire('invoices:c1'); // as another replica would
    let done = false;
    const issuing = invoices.issue('c1').then(() => (done = true));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(done).toBe(false);
    await held.release();
    await issuing;
    expect(done).toBe(true);
  });
});
