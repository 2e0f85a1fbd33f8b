/**
 * The one-host backends with real threads and processes, no mocks: worker threads sharing a
 * ThreadLockTable, cluster workers and fork()ed children sharing the test process's
 * ClusterLockHub (the test process plays the primary). Each runs test/fixtures/local-lock-worker.mjs,
 * which imports the built package. Mutual exclusion is shown by a counter incremented with a
 * non-atomic read / wait / write (no update lost, no two sections overlapping in time, fencing
 * tokens increasing in time order), with a run without the lock showing that the test can fail;
 * death handling by a thread terminated and a process SIGKILLed while holding.
 */
import { type ChildProcess, fork } from 'node:child_process';
import cluster, { type Worker as ClusterWorker } from 'node:cluster';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';

import {
  ClusterLock,
  ClusterLockClient,
  ClusterLockHub,
  ThreadLock,
  ThreadLockTable,
} from 'nestjs-sherlock';
import { afterAll, describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHILD = fileURLToPath(new URL('../fixtures/local-lock-worker.mjs', import.meta.url));

interface Section {
  readonly start: number;
  readonly end: number;
  readonly token?: string;
}
type Reply =
  | { type: 'done'; sections: Section[] }
  | { type: 'ready' }
  | { type: 'held'; token: string }
  | { type: 'waiting' }
  | { type: 'acquired' }
  | { type: 'clients'; locked: boolean[] }
  | { type: 'failed'; error: string };

const now = () => Number(process.hrtime.bigint()) / 1e6;

/** Pairs of sections overlapping in time. */
function overlaps(sections: readonly Section[]): number {
  const sorted = [...sections].sort((a, b) => a.start - b.start);
  let count = 0;
  let latestEnd = -Infinity;
  for (const section of sorted) {
    if (section.start <= latestEnd) count++;
    latestEnd = Math.max(latestEnd, section.end);
  }
  return count;
}

/** The tokens of the sections in time order, strictly increasing. */
function expectTokensInOrder(sections: readonly Section[]): void {
  const tokens = [...sections].sort((a, b) => a.start - b.start).map((s) => BigInt(s.token ?? -1));
  for (let i = 1; i < tokens.length; i++) {
    expect(tokens[i], `token ${i} in time order`).toBeGreaterThan(tokens[i - 1] ?? -1n);
  }
}

/** The next reply of an emitter of messages (a Worker, a child process) of type `type`. */
function reply<T extends Reply['type']>(
  from: {
    on(event: 'message', listener: (message: unknown) => void): unknown;
    off(event: 'message', listener: (message: unknown) => void): unknown;
  },
  type: T,
  limitMs = 30_000,
): Promise<Extract<Reply, { type: T }>> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no '${type}' within ${limitMs} ms`)), limitMs);
    const listener = (message: unknown) => {
      const got = message as Reply;
      if (got?.type === 'failed') done(new Error(got.error));
      else if (got?.type === type) done(undefined, got as Extract<Reply, { type: T }>);
    };
    const done = (error?: Error, value?: Extract<Reply, { type: T }>) => {
      clearTimeout(timer);
      from.off('message', listener);
      if (error) reject(error);
      else resolve(value as Extract<Reply, { type: T }>);
    };
    from.on('message', listener);
  });
}

const THREADS = 4;
const SECTIONS = 40;

describe('threads backend: worker threads sharing a ThreadLockTable', () => {
  const table = new ThreadLockTable({ slots: 64 });
  const workers: Worker[] = [];
  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.terminate()));
  });
  const start = (job: Record<string, unknown>) => {
    const worker = new Worker(CHILD, { workerData: { locks: table.buffer, ...job } });
    workers.push(worker);
    return worker;
  };

  const count = async (withLock: boolean) => {
    // Cell 0: the counter; 1: threads ready; 2: the start signal (they start together).
    const counter = new SharedArrayBuffer(12);
    const cells = new Int32Array(counter);
    const name = uniqueName('threads-count');
    // Without the lock, a longer wait inside the section makes lost updates certain.
    const holdMs = withLock ? 1 : 5;
    const job = { type: 'count', name, counter, sections: SECTIONS, withLock, holdMs, pauseMs: 0 };
    const runs = Array.from({ length: THREADS }, () => reply(start(job), 'done', 60_000));
    while (Atomics.load(cells, 1) < THREADS) await new Promise((r) => setTimeout(r, 20));
    Atomics.store(cells, 2, 1);
    Atomics.notify(cells, 2);
    const sections = (await Promise.all(runs)).flatMap((done) => done.sections);
    return { value: Atomics.load(cells, 0), sections };
  };

  it(`${THREADS} threads × ${SECTIONS} sections under one lock: no update lost, no overlap, tokens in order`, async () => {
    const { value, sections } = await count(true);
    expect(value).toBe(THREADS * SECTIONS);
    expect(overlaps(sections)).toBe(0);
    expectTokensInOrder(sections);
  });

  it('the same without the lock loses updates (the test can fail)', async () => {
    const { value, sections } = await count(false);
    expect(value).toBeLessThan(THREADS * SECTIONS);
    expect(overlaps(sections)).toBeGreaterThan(0);
  });

  it('a thread terminated while holding: the lock frees at its expiry at the latest', async () => {
    const name = uniqueName('threads-dead');
    const expire = 2_000;
    const holder = start({ type: 'hold', name, expire });
    await reply(holder, 'held');
    const heldAt = now();
    await holder.terminate();
    const lock = new ThreadLock(name, { client: table, timeout: 10_000 });
    expect(await lock.acquire()).toBe(true);
    const after = now() - heldAt;
    expect(after).toBeLessThan(expire + 3_000);
    await lock.release();
  });

  it('a waiter in a thread terminated while in line does not block the line for long', async () => {
    const name = uniqueName('threads-ghost');
    const holder = new ThreadLock(name, { client: table, expire: 30_000 });
    expect(await holder.acquire(false)).toBe(true);
    const ghost = start({ type: 'wait', name });
    await reply(ghost, 'waiting');
    await ghost.terminate(); // its ticket stays in line, abandoned by nobody
    const next = new ThreadLock(name, { client: table, timeout: 15_000 });
    const acquired = next.acquire();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const releasedAt = now();
    await holder.release();
    expect(await acquired).toBe(true);
    // The dead waiter's turn passes on after STALL_MS (1 s) of the lock left free.
    expect(now() - releasedAt).toBeLessThan(5_000);
    await next.release();
  });
});

describe('cluster backend: processes sharing the primary’s ClusterLockHub', () => {
  const hub = ClusterLockHub.ofProcess();
  const children: (ChildProcess | ClusterWorker)[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'sherlock-cluster-'));
  afterAll(() => {
    for (const child of children) {
      try {
        child.kill('SIGKILL');
      } catch {
        // gone already
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const exited = (child: ChildProcess | ClusterWorker) =>
    new Promise<void>((resolve) => child.once('exit', () => resolve()));

  it(`${THREADS} cluster workers × ${SECTIONS} sections under one lock: no update lost, no overlap, tokens in order`, async () => {
    cluster.setupPrimary({ exec: CHILD, cwd: ROOT, silent: false } as Parameters<
      typeof cluster.setupPrimary
    >[0]);
    hub.serveWorkers();
    const counterFile = join(dir, 'counter');
    writeFileSync(counterFile, '0');
    const job = {
      type: 'count',
      name: uniqueName('cluster-count'),
      counterFile,
      sections: SECTIONS,
      withLock: true,
      holdMs: 2,
      pauseMs: 1,
    };
    const workers = Array.from({ length: THREADS }, () => cluster.fork());
    children.push(...workers);
    const runs = workers.map(async (worker) => {
      await reply(worker, 'ready');
      const done = reply(worker, 'done', 90_000);
      const gone = exited(worker);
      worker.send(job);
      const result = await done;
      await gone;
      return result;
    });
    const sections = (await Promise.all(runs)).flatMap((done) => done.sections);
    expect(Number(readFileSync(counterFile, 'utf8'))).toBe(THREADS * SECTIONS);
    expect(overlaps(sections)).toBe(0);
    expectTokensInOrder(sections);
  }, 120_000);

  it('two clients in one fork()ed child share its channel without mixing up their replies', async () => {
    const child = fork(CHILD, [], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    hub.serve(child);
    await reply(child, 'ready');
    const answered = reply(child, 'clients');
    child.send({ type: 'clients', name: uniqueName('cluster-clients'), viaParent: true });
    expect((await answered).locked).toEqual([true, false, true, false]);
  });

  it('a fork()ed child SIGKILLed while holding: the lock frees at once, long before its expiry', async () => {
    const name = uniqueName('cluster-killed');
    const child = fork(CHILD, [], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(child);
    hub.serve(child);
    await reply(child, 'ready');
    const held = reply(child, 'held');
    child.send({ type: 'hold', name, expire: 60_000, viaParent: true });
    const { token } = await held;
    const lock = new ClusterLock(name, { client: ClusterLockClient.local(hub), timeout: 20_000 });
    expect(await lock.acquire(false)).toBe(false);
    const waiting = lock.acquire();
    const killedAt = now();
    child.kill('SIGKILL');
    expect(await waiting).toBe(true);
    expect(now() - killedAt).toBeLessThan(5_000); // the expiry was 60 s
    expect(BigInt(lock.fencingToken ?? -1)).toBeGreaterThan(BigInt(token));
    await lock.release();
  });
});
