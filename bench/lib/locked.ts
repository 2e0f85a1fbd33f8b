/**
 * Scenario 5: the cost of `@Locked` over calling `LockService.run` directly, on the memory and
 * Redis backends, in a real Nest application context.
 *
 * No constructor injection is used, so no decorator metadata is needed: this file runs under tsx
 * (esbuild, which compiles the legacy decorators of tsconfig's `experimentalDecorators`).
 */
import {
  Injectable,
  Module,
  type DynamicModule,
  type INestApplicationContext,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { Redis } from 'ioredis';
import { getLockServiceToken, Locked, LockService, SherlockModule } from 'nestjs-sherlock';
import { fmt, hr, median, ms } from './stats.js';

const MEMORY_LOCK = 'bench:locked:memory';
const REDIS_LOCK = 'bench:locked:redis';

@Injectable()
class Jobs {
  @Locked(MEMORY_LOCK)
  async onMemory(value: number): Promise<number> {
    return value + 1;
  }

  @Locked(REDIS_LOCK, { name: 'redis' })
  async onRedis(value: number): Promise<number> {
    return value + 1;
  }
}

@Module({})
class LockedBenchModule {
  static register(redis: Redis): DynamicModule {
    return {
      module: LockedBenchModule,
      imports: [
        SherlockModule.forRoot({ backend: 'memory' }),
        SherlockModule.forRoot({ name: 'redis', backend: 'redis', client: redis }),
      ],
      providers: [Jobs],
    };
  }
}

export interface LockedResult {
  readonly backend: 'memory' | 'redis';
  readonly calls: number;
  /** Mean µs per call through `LockService.run`. */
  readonly runMicros: number;
  /** Mean µs per call of the `@Locked` method. */
  readonly lockedMicros: number;
  /** `lockedMicros / runMicros`: 1.05 means 5 % overhead. */
  readonly ratio: number;
  /** The ratio of each round, to show the noise. */
  readonly roundRatios: readonly number[];
  /** The median of `roundRatios`: robust to a burst of background load hitting one round. */
  readonly medianRoundRatio: number;
}

/** Runs `fn` `calls` times in sequence; resolves the elapsed ms. */
async function timed(calls: number, fn: (i: number) => Promise<number>): Promise<number> {
  const start = hr();
  for (let i = 0; i < calls; i++) await fn(i);
  return ms(hr() - start);
}

/**
 * `calls` calls of each variant per backend, split into `rounds` interleaved rounds (the order
 * alternating) so that a change of machine load hits both variants alike.
 */
export async function lockedOverhead(
  redis: Redis,
  calls: { readonly memory: number; readonly redis: number },
  rounds: number,
  log: (line: string) => void,
): Promise<LockedResult[]> {
  const app: INestApplicationContext = await NestFactory.createApplicationContext(
    LockedBenchModule.register(redis),
    { logger: false },
  );
  try {
    const jobs = app.get(Jobs);
    const variants = {
      memory: {
        locks: app.get<LockService>(LockService),
        name: MEMORY_LOCK,
        method: (i: number) => jobs.onMemory(i),
      },
      redis: {
        locks: app.get<LockService>(getLockServiceToken('redis')),
        name: REDIS_LOCK,
        method: (i: number) => jobs.onRedis(i),
      },
    };
    const results: LockedResult[] = [];
    for (const backend of ['memory', 'redis'] as const) {
      const { locks, name, method } = variants[backend];
      const viaRun = (i: number) => locks.run(name, async () => i + 1);
      const perRound = Math.ceil(calls[backend] / rounds);
      await timed(Math.ceil(perRound / 2), viaRun); // warm-up
      await timed(Math.ceil(perRound / 2), method);
      let runMs = 0;
      let lockedMs = 0;
      const roundRatios: number[] = [];
      for (let round = 0; round < rounds; round++) {
        let r: number;
        let l: number;
        if (round % 2 === 0) {
          r = await timed(perRound, viaRun);
          l = await timed(perRound, method);
        } else {
          l = await timed(perRound, method);
          r = await timed(perRound, viaRun);
        }
        runMs += r;
        lockedMs += l;
        roundRatios.push(l / r);
      }
      const total = perRound * rounds;
      const result: LockedResult = {
        backend,
        calls: total,
        runMicros: (runMs * 1000) / total,
        lockedMicros: (lockedMs * 1000) / total,
        ratio: lockedMs / runMs,
        roundRatios,
        medianRoundRatio: median(roundRatios),
      };
      log(
        `  ${backend}: run ${fmt(result.runMicros, 1)} µs, @Locked ${fmt(result.lockedMicros, 1)} µs`,
      );
      results.push(result);
    }
    return results;
  } finally {
    await app.close();
  }
}
