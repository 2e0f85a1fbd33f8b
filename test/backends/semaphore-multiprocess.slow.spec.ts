/**
 * A semaphore across processes, on the real servers: 6 worker processes
 * (test/fixtures/semaphore-worker.ts, importing the built package, each with a client of its own)
 * take permits of ONE semaphore name with limit 2, 8 sections each. Inside a section each puts a
 * marker file in a shared directory and counts the markers: never more than 2 may be seen, and 2
 * must be seen (the permits are really shared out). The contrast run, the same workers without
 * the semaphore, sees more than 2: the test can fail.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, describe, expect, it } from 'vitest';

import type {
  SemaphoreJob,
  SemaphoreReport,
  SemaphoreWorkerMessage,
} from '../fixtures/semaphore-worker.js';
import { uniqueName } from '../support/backends.js';
import { expectStrictlyIncreasing } from '../support/helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKER = fileURLToPath(new URL('../fixtures/semaphore-worker.ts', import.meta.url));

const WORKERS = 6;
const SECTIONS = 8;
const LIMIT = 2;
const HOLD_MS = 40;
/** How long the workers may take to start, or to run their sections. */
const STEP_LIMIT_MS = 90_000;

const dirs: string[] = [];
const children: ChildProcess[] = [];

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** Resolves on the worker's next message of `type`; rejects on `failed`, an exit or the limit. */
function next(child: ChildProcess, type: 'ready' | 'done', output: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(`no '${type}' within ${STEP_LIMIT_MS} ms`), STEP_LIMIT_MS);
    const onMessage = (message: SemaphoreWorkerMessage) => {
      if (message.type === type) done(resolve);
      else if (message.type === 'failed') fail(message.error);
    };
    const onExit = () => fail('the worker exited');
    const done = (settle: () => void) => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      settle();
    };
    const fail = (why: string) => done(() => reject(new Error(`${why}\n${output()}`)));
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

async function run(
  backend: SemaphoreJob['backend'],
  withSemaphore: boolean,
): Promise<SemaphoreReport[]> {
  const dir = mkdtempSync(join(tmpdir(), 'sherlock-semaphore-'));
  dirs.push(dir);
  const markers = join(dir, 'markers');
  mkdirSync(markers);
  const name = uniqueName(`sem-${backend}`);
  const workers = Array.from({ length: WORKERS }, (_, i) => {
    const job: SemaphoreJob = {
      backend,
      withSemaphore,
      worker: `w${i + 1}`,
      name,
      limit: LIMIT,
      markers,
      outFile: join(dir, `w${i + 1}.json`),
      sections: SECTIONS,
      holdMs: HOLD_MS,
    };
    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, JSON.stringify(job)], {
      cwd: ROOT,
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    children.push(child);
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    return { job, child, output: () => `worker ${job.worker} output:\n${output}` };
  });
  await Promise.all(workers.map(({ child, output }) => next(child, 'ready', output)));
  const finished = workers.map(({ child, output }) => next(child, 'done', output));
  for (const { child } of workers) child.send({ type: 'go' });
  await Promise.all(finished);
  return workers.map(({ job }) => JSON.parse(readFileSync(job.outFile, 'utf8')) as SemaphoreReport);
}

// One run at a time: 6 processes starting at once are load enough for a small machine.
describe(`${WORKERS} processes share a semaphore of limit ${LIMIT}`, () => {
  it.for(['redis', 'etcd'] as const)(
    `%s: never more than ${LIMIT} inside at once, and ${LIMIT} reached`,
    async (backend, { expect: check }) => {
      const reports = await run(backend, true);
      const seen = reports.flatMap((report) => report.seen);
      console.log(
        `${backend}: ${seen.length} sections, holders seen per section: ` +
          `${[1, 2, 3].map((n) => `${n}: ${seen.filter((s) => s === n).length}`).join(', ')}`,
      );
      check(seen).toHaveLength(WORKERS * SECTIONS);
      check(Math.max(...seen), 'the most holders seen at once').toBe(LIMIT);
      // Each worker's permits, one after another: strictly increasing fencing tokens.
      for (const report of reports) {
        check(report.tokens).toHaveLength(SECTIONS);
        expectStrictlyIncreasing(report.tokens);
      }
      check(new Set(reports.flatMap((r) => r.tokens)).size, 'distinct tokens').toBe(
        WORKERS * SECTIONS,
      );
    },
  );

  it('contrast: the same workers without the semaphore see more than the limit', async () => {
    const reports = await run('redis', false);
    const seen = reports.flatMap((report) => report.seen);
    console.log(`without semaphore: up to ${Math.max(...seen)} inside at once`);
    expect(Math.max(...seen)).toBeGreaterThan(LIMIT);
  });
});
