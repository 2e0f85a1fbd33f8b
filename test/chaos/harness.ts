/**
 * Runs chaos workers (test/chaos/worker.ts) as separate processes, lets a scenario inject its
 * faults while they run, then checks what they recorded (test/chaos/checker.ts) and writes the
 * report to `.tmp/chaos/<scenario>.json` (what RELIABILITY.md quotes).
 *
 * Sizes: CHAOS_SCALE=short (default, for CI), long (the documented long run) or soak (the long
 * run, plus test/chaos/soak.spec.ts: at least 10,000 sections per backend while holders are
 * SIGKILLed and replaced; CHAOS_SOAK_SECTIONS and CHAOS_SOAK_KILLS change its size).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build, type Plugin } from 'esbuild';

import { type ChaosReport, check, checkShared, type WorkerExit } from './checker.js';
import type {
  ChaosBackend,
  ChaosPrimitive,
  Counter,
  WorkerRecord,
  WorkerSettings,
} from './worker.js';
import { crossProcessNow } from '../fixtures/counter-workload.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

const SCALES = ['short', 'long', 'soak'] as const;
export type ChaosScale = (typeof SCALES)[number];

function scaleFromEnv(): ChaosScale {
  const value = process.env['CHAOS_SCALE']?.trim() || 'short';
  const scale = SCALES.find((s) => s === value);
  if (!scale) throw new Error(`CHAOS_SCALE=${value}: expected one of ${SCALES.join(', ')}`);
  return scale;
}

export const CHAOS_SCALE: ChaosScale = scaleFromEnv();
/** The soak run: the long sizes, plus the soak scenario (test/chaos/soak.spec.ts). */
export const SOAK = CHAOS_SCALE === 'soak';
/** The fault scenarios at their long size (in the long run and in the soak). */
export const LONG = CHAOS_SCALE === 'long' || SOAK;
/** Multiplies section counts and run times in the long run. */
export const SCALE = LONG ? 10 : 1;

const bundles = new Map<string, Promise<string>>();

/**
 * A chaos script of test/chaos (`worker`, `leader-worker`) bundled with the built package inlined,
 * once per test process: it starts in ~100 ms with plain node. The drivers stay external.
 */
export function bundleChaosScript(name: string): Promise<string> {
  let bundled = bundles.get(name);
  if (bundled) return bundled;
  bundled = (async () => {
    // One bundle per test process: files running in parallel never overwrite each other's.
    const outfile = join(
      root,
      'node_modules',
      '.cache',
      'nestjs-sherlock-chaos',
      `${name}-${process.pid}.mjs`,
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
      entryPoints: [join(root, 'test', 'chaos', `${name}.ts`)],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      external: ['ioredis', 'etcd3', 'memjs', 'pg', 'node-zookeeper-client'],
      plugins: [inlineDist],
      logLevel: 'warning',
    });
    return outfile;
  })();
  bundles.set(name, bundled);
  return bundled;
}

export interface RunOptions {
  readonly scenario: string;
  readonly backend: ChaosBackend;
  readonly address: string;
  /** zookeeper: the workers' session timeout, ms (default 10 000). */
  readonly sessionTimeout?: number;
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
  /**
   * Stop every worker (after its section in progress) once this many sections have ended, all
   * workers together, replacements included. Each worker still stops at `sections` of its own.
   */
  readonly totalSections?: number;
  /** What the workers take (default: a lock); a semaphore's limit; which ids write. */
  readonly primitive?: ChaosPrimitive;
  readonly limit?: number;
  readonly writeEvery?: number;
  /** The address of the worker in `slot` (default: `address`), e.g. through a proxy to cut. */
  readonly addressFor?: (slot: number) => string;
  /** Runs while the workers do (after they are all ready): inject faults here. */
  readonly during?: (run: ActiveRun) => Promise<void>;
}

export interface Acquired {
  /** The worker's id (its records' `worker`). */
  readonly worker: number;
  /** Its index in `workers` (a replacement takes the slot of the worker it replaces). */
  readonly slot: number;
  readonly token: string | undefined;
  /** When its `acquire()` resolved. */
  readonly at: number;
  /** When it called `acquire()`: the server's expiry of this holding started after this. */
  readonly asked: number;
}

/** What a worker sends its parent. */
type WorkerMessage = { type: string; token?: string; at?: number; asked?: number };

export interface ActiveRun {
  /** The running workers by slot; a replaced worker's slot holds its replacement. */
  readonly workers: readonly ChildProcess[];
  /** Resolves with the next `acquired` message of any worker. */
  nextAcquired(): Promise<Acquired>;
  /** Wall-clock ms, comparable with the records. */
  now(): number;
  /** Facts to keep in the report (fault times, restarts). */
  readonly facts: Record<string, unknown>;
  /** Sections ended so far, all workers together. */
  sectionsDone(): number;
  /** Resolves once `totalSections` have ended (the workers were told to stop) or at the deadline. */
  readonly finished: Promise<void>;
  /**
   * SIGKILLs worker `worker` and, once it is dead, starts a fresh worker (a new id, the same
   * settings) in its slot; resolves when the replacement is ready. Does nothing (undefined) if
   * that worker had already exited or the run is finishing.
   */
  killAndReplace(
    worker: number,
  ): Promise<{ readonly killedAt: number; readonly diedAt: number } | undefined>;
}

export interface RunResult {
  readonly report: ChaosReport;
  readonly records: readonly WorkerRecord[];
  readonly facts: Record<string, unknown>;
  readonly counter: number;
  /** When each worker process was seen dead (its exit event), by worker id. */
  readonly exits: readonly WorkerExit[];
}

interface Spawned {
  readonly id: number;
  readonly child: ChildProcess;
  readonly recordFile: string;
  readonly ready: Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

export async function runChaos(options: RunOptions): Promise<RunResult> {
  const script = await bundleChaosScript('worker');
  const began = performance.now();
  const dir = mkdtempSync(join(tmpdir(), `chaos-${options.scenario}-`));
  const counterFile = join(dir, 'counter');
  writeFileSync(counterFile, JSON.stringify({ value: 0 }));
  const lockName =
    options.lockName ?? `chaos-${options.scenario}-${process.pid}-${Date.now().toString(36)}`;
  /** When the run ends: set once the first workers are all ready (a slow start takes nothing). */
  let until: number | undefined;
  const facts: Record<string, unknown> = {};
  const acquiredListeners: Array<(m: Acquired & { token: string }) => void> = [];
  /** Every worker ever started, by id. */
  const spawned: Spawned[] = [];
  /** The current worker of each slot. */
  const workers: ChildProcess[] = [];
  const slotOf = new Map<number, number>();
  /** Workers killed by `killAndReplace` (their exit code is expected to be null). */
  const replaced = new Set<number>();
  let sectionsDone = 0;
  let stopping = false;
  let reachTarget = (): void => undefined;
  const targetReached = new Promise<void>((resolve) => (reachTarget = resolve));
  const stopAll = () => {
    if (stopping) return;
    stopping = true;
    for (const child of workers) {
      if (child.connected) child.send({ type: 'stop' }, () => undefined);
    }
    reachTarget();
  };

  const spawn = (slot: number): Spawned => {
    const id = spawned.length;
    const settings: WorkerSettings = {
      id,
      backend: options.backend,
      address: options.addressFor?.(slot) ?? options.address,
      lockName,
      ...(options.sessionTimeout !== undefined ? { sessionTimeout: options.sessionTimeout } : {}),
      ...(options.primitive ? { primitive: options.primitive } : {}),
      ...(options.limit !== undefined ? { limit: options.limit } : {}),
      ...(options.writeEvery !== undefined ? { writeEvery: options.writeEvery } : {}),
      sections: options.sections,
      ...(until === undefined ? {} : { until }),
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
    workers[slot] = child;
    slotOf.set(id, slot);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>(
      (resolve) =>
        child.once('exit', (code, signal) => resolve({ code, signal, at: crossProcessNow() })),
    );
    const ready = new Promise<void>((resolve) => {
      // A worker that dies before it is ready must not hang the run.
      void exited.then(() => resolve());
      child.on('message', (message: WorkerMessage) => {
        if (message.type === 'ready') resolve();
        if (message.type === 'acquired') {
          for (const listener of acquiredListeners.splice(0)) {
            const at = message.at ?? 0;
            listener({
              worker: id,
              slot,
              token: message.token ?? '',
              at,
              asked: message.asked ?? at,
            });
          }
        }
        if (message.type === 'section') {
          sectionsDone++;
          if (options.totalSections !== undefined && sectionsDone >= options.totalSections) {
            stopAll();
          }
        }
      });
    });
    const worker: Spawned = { id, child, recordFile: settings.recordFile, ready, exited };
    spawned.push(worker);
    if (stopping && child.connected) child.send({ type: 'stop' }, () => undefined);
    return worker;
  };

  const killAndReplace: ActiveRun['killAndReplace'] = async (id) => {
    const victim = spawned[id];
    const slot = slotOf.get(id);
    if (!victim || slot === undefined || stopping) return undefined;
    if (victim.child.exitCode !== null || victim.child.signalCode !== null) return undefined;
    replaced.add(id);
    victim.child.kill('SIGKILL');
    const killedAt = crossProcessNow();
    const { at: diedAt } = await victim.exited;
    if (!stopping) await spawn(slot).ready;
    return { killedAt, diedAt };
  };

  for (let slot = 0; slot < options.workers; slot++) spawn(slot);
  let deadline: NodeJS.Timeout | undefined;
  try {
    await Promise.all(spawned.map((w) => w.ready));
    until = Date.now() + options.durationMs;
    for (const child of workers) {
      if (child.connected) child.send({ type: 'go', until }, () => undefined);
    }
    deadline = setTimeout(reachTarget, options.durationMs);
    if (options.during) {
      await options.during({
        workers,
        facts,
        now: crossProcessNow,
        nextAcquired: () => new Promise((resolve) => acquiredListeners.push(resolve)),
        sectionsDone: () => sectionsDone,
        finished: targetReached,
        killAndReplace,
      });
    }
    // Replacements may start while the first ones end: wait until no worker is left running.
    let ended: Awaited<Spawned['exited']>[];
    do ended = await Promise.all(spawned.map((w) => w.exited));
    while (ended.length < spawned.length);
    const exits: WorkerExit[] = ended.map((e, worker) => ({ worker, at: e.at }));
    const codes = ended.filter((_, id) => !replaced.has(id)).map((e) => e.code);
    if (codes.some((code) => code !== 0)) facts['workerExitCodes'] = codes;
    let tornRecords = 0;
    const records = spawned.flatMap((w, id) => {
      const lines = readFileSync(w.recordFile, 'utf8').split('\n').filter(Boolean);
      return lines.flatMap((line, index) => {
        try {
          return [JSON.parse(line) as WorkerRecord];
        } catch (error) {
          // A SIGKILL can land in the middle of an append: only a killed worker's last line.
          if (ended[id]?.signal === null || index !== lines.length - 1) throw error;
          tornRecords++;
          return [];
        }
      });
    });
    if (tornRecords > 0) facts['tornRecords'] = tornRecords;
    const counter = (JSON.parse(readFileSync(counterFile, 'utf8')) as Counter).value;
    const report =
      (options.primitive ?? 'lock') === 'lock'
        ? check(records, counter, exits)
        : checkShared(
            records,
            counter,
            exits,
            options.primitive === 'semaphore' ? (options.limit ?? 2) : undefined,
          );
    writeReport(options, report, facts, performance.now() - began);
    return { report, records, facts, counter, exits };
  } finally {
    clearTimeout(deadline);
    for (const { child } of spawned) if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

function writeReport(
  options: RunOptions,
  report: ChaosReport,
  facts: Record<string, unknown>,
  durationMs: number,
) {
  const out = join(root, '.tmp', 'chaos');
  mkdirSync(out, { recursive: true });
  const summary = {
    scenario: options.scenario,
    backend: options.backend,
    scale: CHAOS_SCALE,
    workers: options.workers,
    at: new Date().toISOString(),
    durationMs: Math.round(durationMs),
    ...report,
    facts,
  };
  writeFileSync(join(out, `${options.scenario}.json`), `${JSON.stringify(summary, null, 2)}\n`);
  console.log(
    `chaos ${options.scenario}: ${report.sections} sections` +
      (report.cutSections > 0 ? ` (+${report.cutSections} cut)` : '') +
      `, ${report.overlaps} overlaps, ` +
      `${report.signalledLosses} signalled losses, ${report.tokenRegressions} token regressions, ` +
      `${report.lostUpdates} lost updates, ${report.fencedWrites} fenced writes, ${report.timeouts} timeouts, ${report.backendErrors} ` +
      `backend errors; wait p50 ${report.waitP50Ms.toFixed(1)} ms, max ${report.waitMaxMs.toFixed(0)} ms` +
      ('maxHolders' in report ? `; at most ${String(report.maxHolders)} holding together` : '') +
      (Object.keys(facts).length > 0 ? `; ${JSON.stringify(facts)}` : ''),
  );
}
