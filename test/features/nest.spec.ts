/**
 * The Nest glue of the new features: `@Locked(name, { autoExtend })` keeps the lock for a method
 * that runs longer than its expiry, `currentLock()` and `LockService.run` give the held lock with
 * its fencing token and signal, the module's `autoExtend` defaults apply, and a lost lock is
 * logged through Nest's Logger with the lock's name. On the process-wide memory store and a real
 * Redis.
 */
import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  backends,
  type BaseLock,
  currentLock,
  Locked,
  LockReleaseError,
  LockService,
  SherlockModule,
  type SherlockModuleOptions,
} from 'nestjs-sherlock';
import { describe, it, type TestContext } from 'vitest';

import { fixture, uniqueName } from '../support/backends.js';
import { abortTime, delay, expectLost, now, rejectionOf } from '../support/helpers.js';
import { backendOptions, CapturingLogger } from '../nest/helpers.js';

type NestBackend = 'memory' | 'redis' | 'threads' | 'cluster';
// threads and cluster: a Nest app locking across its threads or its cluster's processes, no server.
const NEST_BACKENDS: readonly NestBackend[] = ['memory', 'redis', 'threads', 'cluster'];

interface Sample {
  readonly aborted: boolean;
  readonly token: string | undefined;
}

@Injectable()
class LongJob {
  /** Runs for `ms` holding the lock `name` with autoExtend, sampling its current lock. */
  @Locked((name: string) => name, { autoExtend: true, expire: 2_000 })
  async run(name: string, ms: number): Promise<Sample[]> {
    void name;
    const samples: Sample[] = [];
    const end = now() + ms;
    while (now() < end) {
      const lock = currentLock();
      samples.push({ aborted: lock?.signal.aborted ?? true, token: lock?.fencingToken });
      await delay(200);
    }
    return samples;
  }

  /** Uses the module's `locked` defaults only. */
  @Locked((name: string) => name)
  async plain(name: string): Promise<BaseLock | undefined> {
    void name;
    return currentLock();
  }

  /** Deletes its lock's key behind its back, then waits for the signal to abort. */
  @Locked((name: string) => name, { autoExtend: 300, expire: 5_000 })
  async robbed(name: string, backend: NestBackend): Promise<string> {
    void name;
    const lock = currentLock();
    if (!lock) throw new Error('no current lock');
    await fixture(backend).server.remove(lock);
    await abortTime(lock.signal);
    return (lock.signal.reason as Error).message;
  }
}

/** Starts an application (closed when the test finishes) and returns it. */
async function startApp(
  context: Pick<TestContext, 'onTestFinished'>,
  options: SherlockModuleOptions,
  logger?: CapturingLogger,
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [SherlockModule.forRoot(options)],
    providers: [LongJob],
  }).compile();
  const app = moduleRef.createNestApplication();
  if (logger) app.useLogger(logger);
  context.onTestFinished(() => app.close());
  await app.init();
  return app;
}

describe.concurrent('Nest: autoExtend, fencing tokens and the loss signal', () => {
  it.for(NEST_BACKENDS)(
    "%s: @Locked(name, { autoExtend: true, expire: 2000 }) on a method running 5 s keeps the lock: another application sees it held throughout; currentLock()'s signal never aborts and it has a fencing token",
    async (backend, context) => {
      const { expect } = context;
      const app = await startApp(context, backendOptions(backend));
      const other = (await startApp(context, backendOptions(backend))).get(LockService);
      const name = uniqueName('long-job');

      const running = app.get(LongJob).run(name, 5_000);
      const seen: boolean[] = [];
      let done = false;
      void running.finally(() => (done = true));
      await delay(100);
      while (!done) {
        seen.push(await other.isLocked(name));
        await delay(250);
      }
      const samples = await running;
      expect(seen.length).toBeGreaterThan(10);
      expect(seen.every(Boolean), `held as seen from outside: ${seen.join(',')}`).toBe(true);
      expect(samples.length).toBeGreaterThan(15);
      expect(samples.every((sample) => !sample.aborted)).toBe(true);
      expect(samples[0]?.token).toMatch(/^\d+$/);
      expect(new Set(samples.map((sample) => sample.token)).size).toBe(1);
      expect(await other.isLocked(name)).toBe(false);
    },
  );

  it.for(NEST_BACKENDS)(
    '%s: LockService.run gives fn the held lock (= currentLock()), with a fencing token and a live signal',
    async (backend, context) => {
      const { expect } = context;
      const service = (await startApp(context, backendOptions(backend))).get(LockService);
      const name = uniqueName('run');
      const tokens: bigint[] = [];
      for (let i = 0; i < 2; i++) {
        const lock = await service.run(name, (held) => {
          expect(held).toBe(currentLock());
          expect(held.isAcquired).toBe(true);
          expect(held.signal.aborted).toBe(false);
          expect(held.fencingToken).toMatch(/^\d+$/);
          tokens.push(BigInt(held.fencingToken ?? -1));
          return held;
        });
        expect(lock.isAcquired).toBe(false);
        expect(lock.fencingToken).toBeUndefined();
      }
      expect(tokens[1]).toBeGreaterThan(tokens[0] ?? 0n);
    },
  );

  it('a module-level autoExtend (and expire) applies to every lock of the registration and keeps it held', async (context) => {
    const { expect } = context;
    const service = (
      await startApp(context, { backend: 'memory', expire: 1_500, autoExtend: true })
    ).get(LockService);
    expect(service.create(uniqueName('x')).renewEvery).toBe(500);
    expect(service.create(uniqueName('x'), { autoExtend: false }).renewEvery).toBeNull();
    const name = uniqueName('module-default');
    const heldThroughout = await service.run(name, async (lock) => {
      const seen: boolean[] = [];
      const end = now() + 3_500; // more than twice the expire
      while (now() < end) {
        seen.push((await service.isLocked(name)) && !lock.signal.aborted);
        await delay(200);
      }
      return seen;
    });
    expect(heldThroughout.length).toBeGreaterThan(10);
    expect(heldThroughout.every(Boolean)).toBe(true);
  });

  it("the module's `locked` autoExtend default applies to @Locked and run(), not to create()", async (context) => {
    const { expect } = context;
    const app = await startApp(context, {
      backend: 'memory',
      locked: { autoExtend: 400, expire: 1_500 },
    });
    const service = app.get(LockService);
    const lock = await app.get(LongJob).plain(uniqueName('plain'));
    expect(lock?.renewEvery).toBe(400);
    expect(lock?.expire).toBe(1_500);
    expect(await service.run(uniqueName('run'), (held) => held.renewEvery)).toBe(400);
    expect(service.create(uniqueName('created')).renewEvery).toBeNull();
  });
});

// Nest's logger override (app.useLogger) is process-wide: these run one at a time.
describe('Nest: a lost lock is logged', () => {
  it.for(NEST_BACKENDS)(
    "%s: a lock lost while its method runs is logged through Nest's Logger with the lock's name (and its release then fails 'not-owned')",
    async (backend, context) => {
      const { expect } = context;
      const logger = new CapturingLogger();
      const app = await startApp(context, backendOptions(backend), logger);
      const name = uniqueName('robbed');

      const error = await rejectionOf(app.get(LongJob).robbed(name, backend));
      expect(error).toBeInstanceOf(LockReleaseError);
      expect((error as LockReleaseError).reason).toBe('not-owned');
      const lost = logger
        .from('SherlockModule')
        .filter((entry) => entry.level === 'error' && /was lost/.test(entry.message));
      expect(lost, JSON.stringify(logger.entries)).toHaveLength(1);
      expect(lost[0]?.message).toContain(`'${name}'`);
    },
  );

  it('by the registration that made the lock only', async (context) => {
    const { expect } = context;
    const logger = new CapturingLogger();
    const app = await startApp(context, backendOptions('memory'), logger);
    await startApp(context, backendOptions('memory'), logger); // listens to 'lost' too
    const name = uniqueName('own');
    const lock = app.get(LockService).create(name, { expire: 60_000 });
    expect(await lock.acquire(false)).toBe(true);
    expect(lock.client).toBe(backends.MEMORY.defaultClient());
    await fixture('memory').server.remove(lock);
    await expectReleaseErrorOnExtend(lock);
    expectLost(lock.signal, ['taken']);
    const lost = logger
      .from('SherlockModule')
      .filter((entry) => /was lost/.test(entry.message) && entry.message.includes(name));
    expect(lost).toHaveLength(1);
  });
});

async function expectReleaseErrorOnExtend(lock: BaseLock): Promise<void> {
  const error = await rejectionOf(lock.extend());
  if (!(error instanceof LockReleaseError) || error.reason !== 'not-owned') {
    throw new Error(`expected extend() to fail 'not-owned', got ${String(error)}`);
  }
}
