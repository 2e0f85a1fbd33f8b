/**
 * Mutual exclusion across processes, on the real servers: 4 worker processes (each
 * test/fixtures/counter-worker.ts, importing the built package) take turns on ONE lock name to
 * increment a counter file with a non-atomic read / wait / write. With a working lock no update
 * is lost and no two critical sections overlap in time; without one (the contrast runs), updates
 * are lost, which shows that the test can fail.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { MemoryLock, MemoryStore } from 'nestjs-sherlock';
import { afterAll, describe, expect, type ExpectStatic, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import {
  handovers,
  type Job,
  overlaps,
  type ParentMessage,
  parseSections,
  runSections,
  type Section,
  STARTUP,
  type WorkerBackend,
  type WorkerMessage,
} from '../fixtures/counter-workload.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKER = fileURLToPath(new URL('../fixtures/counter-worker.ts', import.meta.url));

const WORKERS = 4;
const SECTIONS = 50;
const EXPECTED = WORKERS * SECTIONS;
/** Inside a locked section: short, the lock is what is tested. */
const LOCKED_HOLD_MS = 2;
/** Inside an unlocked section: long enough that concurrent sections reliably lose updates. */
const UNLOCKED_HOLD_MS = 10;
const PAUSE_MS = 1;
/**
 * The locks' retryInterval: short, so the test is quick. Etcd gets 10 ms: there every failed
 * attempt costs raft writes (lease grant + transaction + revoke) that slow the holder down too.
 */
const RETRY_INTERVAL_MS: Record<WorkerBackend, number> = {
  redis: 5,
  memcached: 5,
  etcd: 10,
  etcdhttp: 10,
  memory: 5,
};
/** How long the workers may take to get ready, or to run their sections, before the test fails. */
const STEP_LIMIT_MS = 50_000;
/** How long a worker may take to exit once told to. */
const EXIT_LIMIT_MS = 15_000;

interface ExitResult {
  worker: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
}

interface RunResult {
  counter: number;
  sections: Section[];
}

/** One worker process (test/fixtures/counter-worker.ts) and its IPC channel. */
class WorkerProcess {
  readonly exited: Promise<ExitResult>;
  private readonly child: ChildProcess;
  private output = '';
  private running = true;
  private readonly replies: WorkerMessage[] = [];
  private readonly waiters = new Set<() => void>();

  constructor(readonly id: string) {
    this.child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
      cwd: ROOT,
      env: process.env, // REDIS_URL, MEMCACHED_SERVERS, ETCD_HOSTS
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.on('message', (message: WorkerMessage) => {
      this.replies.push(message);
      this.notify();
    });
    this.exited = new Promise((resolve) => {
      this.child.on('close', (code, signal) => {
        this.running = false;
        this.notify();
        resolve({ worker: id, code, signal, output: this.output });
      });
    });
  }

  private notify(): void {
    for (const wake of [...this.waiters]) wake();
  }

  send(message: ParentMessage): void {
    if (this.running) this.child.send(message);
  }

  /** Waits for the worker's reply about job `id` and fails unless it is `type`. */
  async expectReply(id: string, type: WorkerMessage['type'], timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.replies.findIndex((reply) => reply.id === id);
      const reply = index >= 0 ? this.replies.splice(index, 1)[0] : undefined;
      if (reply?.type === type) return;
      if (reply || !this.running || Date.now() >= deadline) {
        const got = reply
          ? JSON.stringify(reply)
          : this.running
            ? 'no reply'
            : 'the process exited';
        throw new Error(
          `worker ${this.id}, job ${id}: expected '${type}' within ${timeoutMs} ms, got ${got}\n` +
            `worker output:\n${this.output}`,
        );
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, deadline - Date.now());
        this.waiters.add(wake);
      });
    }
  }

  /** Ends the process now (only after a failure: normally workers exit by themselves). */
  kill(): void {
    if (this.running) this.child.kill('SIGKILL');
  }
}

/**
 * The 4 worker processes, started once for the whole file: a process that loads the drivers costs
 * seconds of CPU on a small machine, and every run needs 4 of them. Each run is a job with its own
 * id, lock name and counter file, so the runs of different backends go on concurrently.
 */
let pool: WorkerProcess[] | undefined;
let poolStarted: Promise<void> | undefined;

/** The workers, once each has loaded its modules (so no job waits for a module to load). */
async function workerPool(): Promise<WorkerProcess[]> {
  if (!pool) {
    const workers = Array.from({ length: WORKERS }, (_, i) => new WorkerProcess(`worker-${i + 1}`));
    pool = workers;
    poolStarted = Promise.all(
      workers.map((worker) => worker.expectReply(STARTUP, 'ready', STEP_LIMIT_MS)),
    ).then(() => undefined);
  }
  await poolStarted;
  return pool;
}

const dirs: string[] = [];

afterAll(() => {
  for (const worker of pool ?? []) worker.kill();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function newRunDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sherlock-counter-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'counter'), '0');
  return dir;
}

function collect(dir: string, workers: readonly string[]): RunResult {
  const sections = workers.flatMap((worker) => {
    const file = join(dir, `${worker}.jsonl`);
    return existsSync(file) ? parseSections(readFileSync(file, 'utf8')) : [];
  });
  return { counter: Number(readFileSync(join(dir, 'counter'), 'utf8')), sections };
}

/**
 * Runs the workload in the 4 worker processes at once: each opens the backend with a client of
 * its own; once all are ready (connected), all start together. Returns the counter and sections.
 */
async function runProcesses(
  backend: WorkerBackend,
  { withLock, holdMs }: { withLock: boolean; holdMs: number },
): Promise<RunResult> {
  const dir = newRunDir();
  const id = uniqueName(`${backend}-${withLock ? 'locked' : 'unlocked'}`);
  const workers = await workerPool();
  try {
    for (const worker of workers) {
      const job: Job = {
        backend,
        withLock,
        worker: worker.id,
        lockName: id,
        retryInterval: RETRY_INTERVAL_MS[backend],
        counterFile: join(dir, 'counter'),
        outFile: join(dir, `${worker.id}.jsonl`),
        sections: SECTIONS,
        holdMs,
        pauseMs: PAUSE_MS,
      };
      worker.send({ type: 'prepare', id, job });
    }
    await Promise.all(workers.map((worker) => worker.expectReply(id, 'ready', STEP_LIMIT_MS)));
    for (const worker of workers) worker.send({ type: 'go', id });
    await Promise.all(workers.map((worker) => worker.expectReply(id, 'done', STEP_LIMIT_MS)));
  } catch (err) {
    // Let the workers that did get ready close their clients, so they can still exit.
    for (const worker of workers) worker.send({ type: 'abort', id });
    throw err;
  }
  const names = workers.map((worker) => worker.id);
  return collect(dir, names);
}

/** In-process: 4 concurrent async workers, each with its own MemoryLock on one MemoryStore. */
async function runInProcess(withLock: boolean, holdMs: number) {
  const dir = newRunDir();
  const store = new MemoryStore();
  const workers = Array.from({ length: WORKERS }, (_, i) => `memory-${i + 1}`);
  await Promise.all(
    workers.map((worker) =>
      runSections({
        worker,
        lock: withLock ? new MemoryLock('counter', { client: store, retryInterval: 1 }) : null,
        counterFile: join(dir, 'counter'),
        outFile: join(dir, `${worker}.jsonl`),
        sections: SECTIONS,
        holdMs,
        pauseMs: PAUSE_MS,
      }),
    ),
  );
  return { ...collect(dir, workers), entriesLeft: store.size };
}

function describeRun(label: string, { counter, sections }: RunResult): string {
  const span = Math.max(...sections.map((s) => s.end)) - Math.min(...sections.map((s) => s.start));
  return (
    `${label}: counter ${counter}/${EXPECTED}, ${sections.length} sections in ${Math.round(span)} ms, ` +
    `${overlaps(sections).length} overlapping, ${handovers(sections)} handovers between workers`
  );
}

/** Mutual exclusion: every section ran, no two sections overlapped, no update was lost. */
function expectMutualExclusion(check: ExpectStatic, result: RunResult): void {
  const perWorker = new Map<string, number>();
  for (const { worker } of result.sections) perWorker.set(worker, (perWorker.get(worker) ?? 0) + 1);
  check([...perWorker.values()], 'sections per worker').toEqual(
    Array.from({ length: WORKERS }, () => SECTIONS),
  );
  check(overlaps(result.sections), 'overlapping sections').toEqual([]);
  check(result.counter, 'counter').toBe(EXPECTED);
}

/** What the contrast runs must show: every section ran, but they overlapped and lost updates. */
function expectLostUpdates(check: ExpectStatic, result: RunResult): void {
  check(result.sections).toHaveLength(EXPECTED);
  check(overlaps(result.sections).length, 'overlapping sections').toBeGreaterThan(0);
  check(result.counter, 'counter').toBeLessThan(EXPECTED);
}

// Etcd's 200 sections take seconds alone, and the four backends run at once: a loaded machine
// needs more than the default minute.
describe.concurrent(
  `${WORKERS} processes × ${SECTIONS} critical sections on one lock name`,
  { timeout: 180_000 },
  () => {
    const crossProcess: WorkerBackend[] = ['redis', 'memcached', 'etcd', 'etcdhttp'];

    it.for(crossProcess)(
      `%s: the counter ends at exactly ${EXPECTED} and no two sections overlap`,
      async (backend, { expect: check }) => {
        const result = await runProcesses(backend, { withLock: true, holdMs: LOCKED_HOLD_MS });
        console.log(describeRun(backend, result));
        expectMutualExclusion(check, result);
      },
    );

    it(`contrast: the same workload WITHOUT the lock (redis clients) loses updates`, async ({
      expect: check,
    }) => {
      const result = await runProcesses('redis', { withLock: false, holdMs: UNLOCKED_HOLD_MS });
      console.log(describeRun('without lock', result));
      expectLostUpdates(check, result);
    });

    it(`contrast: MemoryLock does NOT lock across processes (one store each): updates are lost`, async ({
      expect: check,
    }) => {
      const result = await runProcesses('memory', { withLock: true, holdMs: UNLOCKED_HOLD_MS });
      console.log(describeRun('MemoryLock across processes', result));
      expectLostUpdates(check, result);
    });
  },
);

describe('the worker processes', () => {
  it('close their clients and exit by themselves with code 0', async () => {
    const workers = await workerPool();
    for (const worker of workers) worker.send({ type: 'exit' });
    const stillRunning = (worker: WorkerProcess) =>
      new Promise<ExitResult>((resolve) => {
        const result = {
          worker: worker.id,
          code: null,
          signal: null,
          output: `still running ${EXIT_LIMIT_MS} ms after 'exit' (a client left open?)`,
        };
        setTimeout(() => resolve(result), EXIT_LIMIT_MS).unref();
      });
    const results = await Promise.all(
      workers.map((worker) => Promise.race([worker.exited, stillRunning(worker)])),
    );
    for (const result of results) {
      expect(
        { worker: result.worker, code: result.code, signal: result.signal },
        `output of ${result.worker}:\n${result.output}`,
      ).toEqual({ worker: result.worker, code: 0, signal: null });
    }
  });
});

describe('MemoryLock within ONE process (it does not lock across processes)', () => {
  it(`${WORKERS} concurrent async workers × ${SECTIONS} sections on one MemoryStore: counter ${EXPECTED}, no overlap`, async () => {
    const result = await runInProcess(true, LOCKED_HOLD_MS);
    console.log(describeRun('MemoryLock in-process', result));
    expectMutualExclusion(expect, result);
    expect(result.entriesLeft, 'entries left in the store').toBe(0);
  });

  it('contrast: the same async workers without the lock lose updates', async () => {
    const result = await runInProcess(false, UNLOCKED_HOLD_MS);
    console.log(describeRun('in-process without lock', result));
    expectLostUpdates(expect, result);
  });
});
