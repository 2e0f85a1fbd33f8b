/**
 * Runs chaos workers (test/chaos/worker.ts) as separate processes, lets a scenario inject its
 * faults while they run, then checks what they recorded (test/chaos/checker.ts) and writes the
 * report to `.tmp/chaos/<scenario>.json` (what RELIABILITY.md quotes).
 *
 * Sizes: CHAOS_SCALE=short (default, for CI) or long (the documented long run).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build, type Plugin } from 'esbuild';

import { type ChaosReport, check } from './checker.js';
import type { ChaosBackend, Counter, WorkerRecord, WorkerSettings } from './worker.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const LONG = process.env['CHAOS_SCALE'] === 'long';
/** Multiplies section counts and run times in the long run. */
export const SCALE = LONG ? 10 : 1;

let bundled: Promise<string> | undefined;

/** The worker bundled with the built package inlined: starts in ~100 ms with plain node. */
function workerScript(): Promise<string> {
  bundled ??= (async () => {
    // One bundle per test process: files running in parallel never overwrite each other's.
    const outfile = join(
      root,
      'node_modules',
      '.cache',
      'nestjs-sherlock-chaos',
      `worker-${process.pid}.mjs`,
    );
    const inlineDist: Plugin = {
      name: 'nestjs-sherlock-dist',
      setup(b) {
        b.onResolve({ filter: /^nestjs-sherlock\/core$/ }, () => ({
          path: join(root, 'dist', 'sherlock.js'),
        }));
      },
    };
    await build({
      entryPoints: [join(root, 'test', 'chaos', 'worker.ts')],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: ['ioredis', 'etcd3', 'memjs'],
      plugins: [inlineDist],
      logLevel: 'warning',
    });
    return outfile;
  })();
  return bundled;
}

export interface RunOptions {
  readonly scenario: string;
  readonly backend: ChaosBackend;
  readonly address: string;
  readonly workers: number;
  /** The lock's name (default: one of its own). */
  readonly lockName?: string;
  readonly sections: number;
  /** Longest run, ms (the workers stop at this time even if sections remain). */
  readonly durationMs: number;
  readonly expire?: number;
  readonly autoExtend?: boolean;
  readonly acquireTimeout?: number;
  readonly operationTimeout?: number;
  readonly holdMs?: number;
  /** Workers write even after their signal aborted (to show fencing refusing them). */
  readonly ignoreSignal?: boolean;
  readonly workMs?: number;
  /** Runs while the workers do (after they are all ready): inject faults here. */
  readonly during?: (run: ActiveRun) => Promise<void>;
}

export interface ActiveRun {
  readonly workers: readonly ChildProcess[];
  /** Resolves with the next `acquired` message of any worker. */
  nextAcquired(): Promise<{ worker: number; token: string | undefined; at: number }>;
  /** Wall-clock ms, comparable with the records. */
  now(): number;
  /** Facts to keep in the report (fault times, restarts). */
  readonly facts: Record<string, unknown>;
}

export interface RunResult {
  readonly report: ChaosReport;
  readonly records: readonly WorkerRecord[];
  readonly facts: Record<string, unknown>;
  readonly counter: number;
}

const wallClock = (): number => performance.timeOrigin + performance.now();

export async function runChaos(options: RunOptions): Promise<RunResult> {
  const script = await workerScript();
  const dir = mkdtempSync(join(tmpdir(), `chaos-${options.scenario}-`));
  const counterFile = join(dir, 'counter');
  writeFileSync(counterFile, JSON.stringify({ value: 0 }));
  const lockName =
    options.lockName ?? `chaos-${options.scenario}-${process.pid}-${Date.now().toString(36)}`;
  const until = Date.now() + options.durationMs;
  const facts: Record<string, unknown> = {};
  const acquiredListeners: Array<(m: { worker: number; token: string; at: number }) => void> = [];
  const workers: ChildProcess[] = [];
  const exits: Promise<number | null>[] = [];
  const ready: Promise<void>[] = [];
  for (let id = 0; id < options.workers; id++) {
    const settings: WorkerSettings = {
      id,
      backend: options.backend,
      address: options.address,
      lockName,
      sections: options.sections,
      until,
      expire: options.expire ?? 5_000,
      autoExtend: options.autoExtend ?? false,
      acquireTimeout: options.acquireTimeout ?? 20_000,
      operationTimeout: options.operationTimeout ?? 2_000,
      holdMs: options.holdMs ?? 5,
      checkSignal: !options.ignoreSignal,
      workMs: options.workMs ?? 5,
      counterFile,
      recordFile: join(dir, `worker-${id}.jsonl`),
    };
    writeFileSync(settings.recordFile, '');
    const child = fork(script, [], {
      env: { ...process.env, CHAOS_WORKER: JSON.stringify(settings) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    workers.push(child);
    exits.push(new Promise((resolve) => child.once('exit', (code) => resolve(code))));
    ready.push(
      new Promise((resolve) =>
        child.on('message', (message: { type: string; token?: string; at?: number }) => {
          if (message.type === 'ready') resolve();
          if (message.type === 'acquired') {
            for (const listener of acquiredListeners.splice(0)) {
              listener({ worker: id, token: message.token ?? '', at: message.at ?? 0 });
            }
          }
        }),
      ),
    );
  }
  try {
    await Promise.all(ready);
    if (options.during) {
      await options.during({
        workers,
        facts,
        now: wallClock,
        nextAcquired: () => new Promise((resolve) => acquiredListeners.push(resolve)),
      });
    }
    const codes = await Promise.all(exits);
    if (codes.some((code) => code !== 0)) facts['workerExitCodes'] = codes;
    const records = workers.flatMap((_, id) =>
      readFileSync(join(dir, `worker-${id}.jsonl`), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as WorkerRecord),
    );
    const counter = (JSON.parse(readFileSync(counterFile, 'utf8')) as Counter).value;
    const report = check(records, counter);
    writeReport(options, report, facts);
    return { report, records, facts, counter };
  } finally {
    for (const child of workers) if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

function writeReport(options: RunOptions, report: ChaosReport, facts: Record<string, unknown>) {
  const out = join(root, '.tmp', 'chaos');
  mkdirSync(out, { recursive: true });
  const summary = {
    scenario: options.scenario,
    backend: options.backend,
    scale: LONG ? 'long' : 'short',
    workers: options.workers,
    at: new Date().toISOString(),
    ...report,
    facts,
  };
  writeFileSync(join(out, `${options.scenario}.json`), `${JSON.stringify(summary, null, 2)}\n`);
  console.log(
    `chaos ${options.scenario}: ${report.sections} sections, ${report.overlaps} overlaps, ` +
      `${report.signalledLosses} signalled losses, ${report.tokenRegressions} token regressions, ` +
      `${report.lostUpdates} lost updates, ${report.fencedWrites} fenced writes, ${report.timeouts} timeouts, ${report.backendErrors} ` +
      `backend errors; wait p50 ${report.waitP50Ms.toFixed(1)} ms, max ${report.waitMaxMs.toFixed(0)} ms` +
      (Object.keys(facts).length > 0 ? `; ${JSON.stringify(facts)}` : ''),
  );
}
