/**
 * Scenario 6: the cost of the event, metrics and tracing hooks when nobody listens. `@Locked` on
 * the memory backend, this build (`dist/`) against a build of a baseline commit without the
 * hooks, side by side in one process, in interleaved rounds.
 *
 * The baseline is built once into `.tmp/bench-baseline/<commit>/` (`git archive` + `tsc`); it
 * resolves its dependencies from this checkout's node_modules. Default baseline: the commit the
 * hooks were added on (`--baseline=<ref>` to choose another).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NestFactory } from '@nestjs/core';
import { fmt, hr, median, ms } from './stats.js';

/** main just before the lock events, the OpenTelemetry hook and the observer were added. */
export const DEFAULT_BASELINE = '0e52ee0';

export interface HooksResult {
  readonly baseline: string;
  readonly calls: number;
  /** Mean µs per `@Locked` call of the baseline build. */
  readonly baselineMicros: number;
  /** Mean µs per `@Locked` call of this build. */
  readonly currentMicros: number;
  /** `currentMicros / baselineMicros`. */
  readonly ratio: number;
  readonly roundRatios: readonly number[];
  readonly medianRoundRatio: number;
}

interface Library {
  Locked: (name: string) => MethodDecorator;
  SherlockModule: { forRoot(options: object): unknown };
}

/** Builds `ref`'s lib/ into `.tmp/bench-baseline/<sha>/dist` (once); resolves its index.js. */
function buildBaseline(root: string, ref: string, log: (line: string) => void): string {
  const sha = execFileSync('git', ['rev-parse', '--short', ref], { cwd: root }).toString().trim();
  const dir = join(root, '.tmp', 'bench-baseline', sha);
  const index = join(dir, 'dist', 'index.js');
  if (existsSync(index)) return index;
  log(`  building the baseline ${ref} (${sha}) into ${dir}`);
  mkdirSync(dir, { recursive: true });
  const archive = execFileSync('git', [
    '-C',
    root,
    'archive',
    sha,
    'lib',
    'package.json',
    'tsconfig.json',
    'tsconfig.build.json',
  ]);
  execFileSync('tar', ['-x', '-C', dir], { input: archive });
  if (!existsSync(join(dir, 'node_modules'))) {
    symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  }
  execFileSync(
    join(root, 'node_modules', '.bin', 'tsc'),
    ['-p', 'tsconfig.build.json', '--outDir', 'dist'],
    {
      cwd: dir,
      stdio: 'inherit',
    },
  );
  return index;
}

/** A Nest application context with one `@Locked` method on memory, from `library`. */
async function makeApp(library: Library, name: string) {
  const { Module, Injectable } = await import('@nestjs/common');
  class Jobs {
    async run(value: number): Promise<number> {
      return value + 1;
    }
  }
  const descriptor = Object.getOwnPropertyDescriptor(Jobs.prototype, 'run')!;
  library.Locked(name)(Jobs.prototype, 'run', descriptor);
  Object.defineProperty(Jobs.prototype, 'run', descriptor);
  Injectable()(Jobs);
  class BenchModule {}
  Module({
    imports: [library.SherlockModule.forRoot({ backend: 'memory' }) as never],
    providers: [Jobs],
  })(BenchModule);
  const app = await NestFactory.createApplicationContext(BenchModule, { logger: false });
  return { app, jobs: app.get(Jobs) };
}

async function timed(calls: number, fn: (i: number) => Promise<number>): Promise<number> {
  const start = hr();
  for (let i = 0; i < calls; i++) await fn(i);
  return ms(hr() - start);
}

export async function hooksOverhead(
  root: string,
  baselineRef: string,
  calls: number,
  rounds: number,
  log: (line: string) => void,
): Promise<HooksResult> {
  const baselineIndex = buildBaseline(root, baselineRef, log);
  const current = (await import(pathToFileURL(join(root, 'dist', 'index.js')).href)) as Library;
  const baseline = (await import(pathToFileURL(baselineIndex).href)) as Library;
  const a = await makeApp(baseline, 'bench:hooks:baseline');
  const b = await makeApp(current, 'bench:hooks:current');
  try {
    const viaBaseline = (i: number) => a.jobs.run(i);
    const viaCurrent = (i: number) => b.jobs.run(i);
    const perRound = Math.ceil(calls / rounds);
    await timed(perRound, viaBaseline); // warm-up
    await timed(perRound, viaCurrent);
    let baseMs = 0;
    let currentMs = 0;
    const roundRatios: number[] = [];
    for (let round = 0; round < rounds; round++) {
      let x: number;
      let y: number;
      if (round % 2 === 0) {
        x = await timed(perRound, viaBaseline);
        y = await timed(perRound, viaCurrent);
      } else {
        y = await timed(perRound, viaCurrent);
        x = await timed(perRound, viaBaseline);
      }
      baseMs += x;
      currentMs += y;
      roundRatios.push(y / x);
    }
    const total = perRound * rounds;
    const result: HooksResult = {
      baseline: baselineRef,
      calls: total,
      baselineMicros: (baseMs * 1000) / total,
      currentMicros: (currentMs * 1000) / total,
      ratio: currentMs / baseMs,
      roundRatios,
      medianRoundRatio: median(roundRatios),
    };
    log(
      `  @Locked on memory: baseline ${fmt(result.baselineMicros, 2)} µs, this build ${fmt(result.currentMicros, 2)} µs`,
    );
    return result;
  } finally {
    await a.app.close();
    await b.app.close();
  }
}
