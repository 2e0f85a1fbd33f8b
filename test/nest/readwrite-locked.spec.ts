/**
 * The semaphore and the read-write lock in Nest, on a real Redis (and Memcached for refusals):
 * `LockService.readWrite()`, `@Locked(name, { limit })` (at most `limit` calls at once),
 * `@Locked(name, { mode: 'read' | 'write' })` (reads together, writes alone), re-entrancy (the
 * write side re-enters for a read; a read cannot be upgraded), `run()` with the same options,
 * and what is refused at decoration or at bootstrap with an error naming the option.
 */
import { Injectable } from '@nestjs/common';
import {
  currentLock,
  LockError,
  Locked,
  LockService,
  ReadWriteLock,
  ReadWriteSide,
  Semaphore,
  SherlockModule,
  UnsupportedFeatureError,
} from 'nestjs-sherlock';
import { describe, expect, it } from 'vitest';

import { memcachedServerList, redisUrl } from '../support/env.js';
import { delay, rejectionOf, uniqueName, useApps } from './helpers.js';

const apps = useApps();
const NAMESPACE = uniqueName('rw-nest');

const sherlock = () =>
  SherlockModule.forRoot({
    backend: 'redis',
    connection: redisUrl(),
    namespace: NAMESPACE,
    expire: 20_000,
    timeout: 20_000,
  });

/** Counts who is inside each method at once, and the most seen. */
class Meter {
  inside = 0;
  most = 0;
  async run(ms: number): Promise<void> {
    this.inside += 1;
    this.most = Math.max(this.most, this.inside);
    await delay(ms);
    this.inside -= 1;
  }
}

@Injectable()
class Reports {
  readonly meter = new Meter();
  seen: unknown;

  @Locked('report-build', { limit: 2 })
  async build(): Promise<void> {
    this.seen = currentLock();
    await this.meter.run(80);
  }
}

@Injectable()
class Catalog {
  readers = 0;
  writers = 0;
  mostReaders = 0;
  readonly violations: string[] = [];

  @Locked('catalog', { mode: 'read' })
  async list(): Promise<string> {
    this.readers += 1;
    this.mostReaders = Math.max(this.mostReaders, this.readers);
    if (this.writers > 0) this.violations.push(`read next to ${this.writers} writer(s)`);
    await delay(60);
    this.readers -= 1;
    return (currentLock() as ReadWriteSide).mode;
  }

  @Locked('catalog', { mode: 'write' })
  async replace(): Promise<string> {
    this.writers += 1;
    if (this.writers > 1 || this.readers > 0) {
      this.violations.push(
        `write next to ${this.writers - 1} writer(s), ${this.readers} reader(s)`,
      );
    }
    await delay(40);
    this.writers -= 1;
    return (currentLock() as ReadWriteSide).mode;
  }

  /** A write that reads inside: the write side re-enters for the read. */
  @Locked('catalog', { mode: 'write' })
  async replaceThenList(): Promise<string> {
    return this.listInside();
  }

  @Locked('catalog', { mode: 'read' })
  async listInside(): Promise<string> {
    return (currentLock() as ReadWriteSide).mode;
  }

  /** A read that tries to write inside: refused at once (it would wait for itself). */
  @Locked('catalog', { mode: 'read' })
  async listThenReplace(): Promise<string> {
    return this.replace();
  }
}

describe('@Locked with limit / mode, on redis', () => {
  it('limit: at most `limit` calls at once over two applications (two replicas); the held object is a Semaphore', async () => {
    const one = await apps.start({ imports: [sherlock()], providers: [Reports] });
    const two = await apps.start({ imports: [sherlock()], providers: [Reports] });
    const a = one.get(Reports);
    const b = two.get(Reports);
    const meter = new Meter();
    // Both replicas' calls counted together.
    a.meter.run = b.meter.run = (ms: number) => meter.run(ms);
    await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? a : b).build()));
    expect(meter.most).toBe(2);
    expect(a.seen).toBeInstanceOf(Semaphore);
    expect((a.seen as Semaphore).limit).toBe(2);
    expect(await one.get(LockService).semaphore('report-build', 2).count()).toBe(0);
  });

  it("mode: reads run together, a write runs alone; the held object is the lock's read or write side", async () => {
    const app = await apps.start({ imports: [sherlock()], providers: [Catalog] });
    const catalog = app.get(Catalog);
    const calls = Array.from({ length: 12 }, (_, i) =>
      i % 4 === 3 ? catalog.replace() : catalog.list(),
    );
    const modes = await Promise.all(calls);
    expect(catalog.violations).toEqual([]);
    expect(catalog.mostReaders).toBeGreaterThan(1);
    expect(modes.filter((m) => m === 'write')).toHaveLength(3);
    expect(modes.filter((m) => m === 'read')).toHaveLength(9);
    const state = await app.get(LockService).readWrite('catalog').state();
    expect(state).toEqual({ readers: 0, writer: false, writerWaiting: false });
  });

  it('re-entrancy: a read inside a write re-enters the write side; a write inside a read is refused with a LockError, not a deadlock', async () => {
    const app = await apps.start({ imports: [sherlock()], providers: [Catalog] });
    const catalog = app.get(Catalog);
    expect(await catalog.replaceThenList()).toBe('write');
    const error = await rejectionOf(catalog.listThenReplace());
    expect(error).toBeInstanceOf(LockError);
    expect(error.message).toMatch(/cannot be upgraded/);
    const state = await app.get(LockService).readWrite('catalog').state();
    expect(state).toEqual({ readers: 0, writer: false, writerWaiting: false });
  });

  it('LockService.readWrite() is a ReadWriteLock of the registration; run() takes mode and limit too', async () => {
    const app = await apps.start({ imports: [sherlock()] });
    const locks = app.get(LockService);
    const rw = locks.readWrite('prices', { timeout: 1_234 });
    expect(rw).toBeInstanceOf(ReadWriteLock);
    expect(rw.read.manager).toBe(locks.manager);
    expect(rw.write.namespace).toBe(NAMESPACE);
    expect(rw.write.timeout).toBe(1_234);
    const seen = await locks.run('prices', async (lock) => lock, { mode: 'write' });
    expect(seen).toBeInstanceOf(ReadWriteSide);
    expect((seen as ReadWriteSide).mode).toBe('write');
    const permit = await locks.run('prices', async (lock) => lock, { limit: 3 });
    expect(permit).toBeInstanceOf(Semaphore);
    const modeError = await rejectionOf(
      locks.run(['a', 'b'], async () => 1, { mode: 'read' } as never),
    );
    expect(modeError.message).toMatch(/Invalid option 'mode'.*LockService.run\(\)/);
    const error = await rejectionOf(locks.run(['a', 'b'], async () => 1, { limit: 2 } as never));
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toMatch(/Invalid option 'limit'/);
  });
});

describe('@Locked with limit / mode: refused with an error naming the option', () => {
  it('at decoration: limit with mode, a bad limit, a bad mode, limit or mode with an array of names', () => {
    const cases: [() => unknown, RegExp][] = [
      [() => Locked('x', { limit: 2, mode: 'read' }), /Invalid option 'mode'.*'limit' 2/],
      [() => Locked('x', { limit: 0 }), /Invalid option 'limit': got 0/],
      [() => Locked('x', { limit: 2.5 }), /Invalid option 'limit'/],
      [() => Locked('x', { mode: 'upgrade' as never }), /Invalid option 'mode'.*'read' or 'write'/],
      [() => Locked(['x', 'y'], { limit: 2 }), /Invalid option 'limit'.*several lock names/],
      [() => Locked(['x', 'y'], { mode: 'write' }), /Invalid option 'mode'.*several lock names/],
    ];
    for (const [decorate, message] of cases) expect(decorate).toThrow(message);
  });

  it('at the call: a name function returning several names with mode', async () => {
    @Injectable()
    class Bad {
      @Locked((a: string, b: string) => [a, b], { mode: 'read' })
      async both(_a: string, _b: string): Promise<void> {}
    }
    const app = await apps.start({ imports: [sherlock()], providers: [Bad] });
    const error = await rejectionOf(app.get(Bad).both('p', 'q'));
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toMatch(/Invalid option 'mode'.*name function of Bad.both/);
  });

  it('at bootstrap: limit or mode on a backend that cannot hold one (memcached) fails the start with UnsupportedFeatureError', async () => {
    const memcached = SherlockModule.forRoot({
      backend: 'memcached',
      connection: memcachedServerList(),
    });
    for (const provider of [Reports, Catalog]) {
      const error = await rejectionOf(apps.start({ imports: [memcached], providers: [provider] }));
      expect(error).toBeInstanceOf(UnsupportedFeatureError);
      expect((error as UnsupportedFeatureError).backend).toBe('memcached');
      expect((error as UnsupportedFeatureError).feature).toBe(
        provider === Reports ? 'semaphore' : 'readWrite',
      );
    }
  });

  it("the module's locked defaults take neither (they belong to one method)", async () => {
    const error = await rejectionOf(
      apps.start({
        imports: [SherlockModule.forRoot({ backend: 'memory', locked: { limit: 2 } as never })],
      }),
    );
    expect(error.message).toMatch(/limit/);
  });
});
