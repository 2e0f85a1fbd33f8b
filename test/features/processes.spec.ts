/**
 * Fencing across processes, on the real servers, with 4 worker processes
 * (test/fixtures/fencing-worker.ts, importing the built package):
 *
 * - taking turns on one lock name, the fencing tokens strictly increase in holding order;
 * - a holder process frozen with SIGSTOP (a GC pause, a stalled VM) loses its lock to another
 *   client, which gets a higher token; when it resumes, its signal aborts at once, and a store
 *   that checks fencing tokens refuses the stale writes it still sends, while accepting the new
 *   holder's.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { Redis } from 'ioredis';
import { RedisLock } from 'nestjs-sherlock';
import { afterAll, describe, it } from 'vitest';

import type {
  FencedSection,
  FencingBackend,
  FencingJob,
  FencingReply,
} from '../fixtures/fencing-worker.js';
import { crossProcessNow, overlaps } from '../fixtures/counter-workload.js';
import { uniqueName } from '../support/backends.js';
import { redisUrl } from '../support/env.js';
import { delay, expectStrictlyIncreasing } from '../support/helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKER = fileURLToPath(new URL('../fixtures/fencing-worker.ts', import.meta.url));
const WORKERS = 4;
const SECTIONS = 15;
const START_LIMIT_MS = 40_000;

/** One worker process and the replies it sent. */
class Worker {
  readonly replies: FencingReply[] = [];
  readonly exited: Promise<void>;
  private readonly child: ChildProcess;
  private output = '';
  private running = true;
  private readonly listeners = new Set<() => void>();

  constructor(readonly id: string) {
    this.child = spawn(process.execPath, ['--import', 'tsx', WORKER], {
      cwd: ROOT,
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    this.child.on('message', (reply: FencingReply) => {
      this.replies.push(reply);
      for (const listener of [...this.listeners]) listener();
    });
    this.exited = new Promise((resolve) =>
      this.child.on('close', () => {
        this.running = false;
        for (const listener of [...this.listeners]) listener();
        resolve();
      }),
    );
  }

  get pid(): number {
    const { pid } = this.child;
    if (pid === undefined) throw new Error(`worker ${this.id} has no pid`);
    return pid;
  }

  send(job: FencingJob): void {
    if (this.running) this.child.send(job);
  }

  /** The first reply matching `match` (already received or to come); fails after `timeout` ms. */
  async reply<R extends FencingReply>(
    match: (reply: FencingReply) => reply is R,
    timeout: number,
  ): Promise<R> {
    const deadline = Date.now() + timeout;
    for (;;) {
      const found = this.replies.find(match);
      if (found) return found;
      const failed = this.replies.find((reply) => reply.type === 'failed');
      if (failed || !this.running || Date.now() >= deadline) {
        throw new Error(
          `worker ${this.id}: no matching reply within ${timeout} ms` +
            ` (${failed ? JSON.stringify(failed) : this.running ? 'none' : 'it exited'})\n` +
            `output:\n${this.output}`,
        );
      }
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.listeners.delete(done);
          resolve();
        };
        const timer = setTimeout(done, deadline - Date.now());
        this.listeners.add(done);
      });
    }
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  kill(): void {
    this.signal('SIGKILL');
  }
}

const workers: Worker[] = [];
let started: Promise<Worker[]> | undefined;

/** The 4 workers, started once for the file (a process loading the drivers costs seconds). */
function pool(): Promise<Worker[]> {
  started ??= (async () => {
    for (let i = 0; i < WORKERS; i++) workers.push(new Worker(`worker-${i + 1}`));
    await Promise.all(
      workers.map((worker) =>
        worker.reply((r): r is FencingReply => r.type === 'ready', START_LIMIT_MS),
      ),
    );
    return workers;
  })();
  return started;
}

const killAll = () => {
  for (const worker of workers) {
    worker.signal('SIGCONT');
    worker.kill();
  }
};
process.once('exit', killAll);

afterAll(async () => {
  // Normally they end by themselves after 'exit'; whatever is left is killed.
  for (const worker of workers) worker.send({ type: 'exit' });
  await Promise.race([Promise.all(workers.map((worker) => worker.exited)), delay(5_000)]);
  killAll();
});

const isSections =
  (id: string) =>
  (reply: FencingReply): reply is Extract<FencingReply, { type: 'sections' }> =>
    reply.type === 'sections' && reply.id === id;

async function takeTurns(backend: FencingBackend): Promise<FencedSection[]> {
  const all = await pool();
  const id = uniqueName(`turns-${backend}`);
  const lockName = uniqueName(`turns-${backend}`);
  for (const worker of all) {
    worker.send({ type: 'sections', id, worker: worker.id, backend, lockName, sections: SECTIONS });
  }
  const replies = await Promise.all(all.map((worker) => worker.reply(isSections(id), 50_000)));
  return replies.flatMap((reply) => reply.sections);
}

describe.concurrent(`${WORKERS} processes take turns on one lock name`, () => {
  it.for(['redis', 'etcd'] as const)(
    `%s: ${WORKERS} × ${SECTIONS} sections: the fencing tokens strictly increase in holding order`,
    async (backend: FencingBackend, { expect }) => {
      const sections = await takeTurns(backend);
      expect(sections).toHaveLength(WORKERS * SECTIONS);
      expect(overlaps(sections), 'overlapping sections').toEqual([]);
      const inOrder = [...sections].sort((a, b) => a.start - b.start);
      const changes = inOrder.filter((s, i) => i > 0 && inOrder[i - 1]?.worker !== s.worker);
      console.log(
        `${backend}: ${sections.length} sections, ${changes.length} hand-overs between processes, tokens ${inOrder[0]?.token} .. ${inOrder.at(-1)?.token}`,
      );
      expect(changes.length, 'the processes did take turns').toBeGreaterThan(WORKERS);
      expectStrictlyIncreasing(inOrder.map((section) => section.token));
    },
  );
});

/** A store that refuses a write whose fencing token is below the highest it has seen. */
class FencedStore {
  private highest = -1n;
  readonly log: { who: string; token: string; accepted: boolean }[] = [];

  write(who: string, token: string | undefined): boolean {
    const value = BigInt(token ?? -1);
    const accepted = value >= this.highest;
    if (accepted) this.highest = value;
    this.log.push({ who, token: token ?? '', accepted });
    return accepted;
  }
}

describe('a holder process frozen with SIGSTOP', () => {
  it('loses its lock to another client (higher token); on SIGCONT its signal aborts at once and the fenced store refuses its stale writes', async ({
    expect,
  }) => {
    const [worker] = await pool();
    if (!worker) throw new Error('no worker');
    const client = new Redis(redisUrl());
    const id = uniqueName('frozen');
    const lockName = uniqueName('frozen');
    const store = new FencedStore();
    let forwarded = 0;
    /** Hands the worker's writes (received so far) to the store. */
    const forward = () => {
      const writes = worker.replies.filter(
        (r): r is Extract<FencingReply, { type: 'write' }> => r.type === 'write' && r.id === id,
      );
      for (const write of writes.slice(forwarded)) {
        store.write(write.aborted ? 'worker (signal aborted)' : 'worker', write.token);
      }
      forwarded = writes.length;
    };
    try {
      worker.send({ type: 'hold', id, lockName, expire: 2_000 });
      const held = await worker.reply(
        (r): r is Extract<FencingReply, { type: 'held' }> => r.type === 'held' && r.id === id,
        10_000,
      );
      await delay(1_000); // renewals go on, and its writes are accepted
      forward();
      expect(store.log.length).toBeGreaterThanOrEqual(5);
      expect(store.log.every((entry) => entry.accepted)).toBe(true);

      worker.signal('SIGSTOP');
      const stoppedAt = crossProcessNow();
      await delay(50);
      forward(); // the writes it sent before it froze
      // Its lock runs out (no renewals from a frozen process); another client takes it.
      const next = new RedisLock(lockName, { client, expire: 10_000, timeout: 8_000 });
      expect(await next.acquire()).toBe(true);
      const tookAfter = crossProcessNow() - stoppedAt;
      expect(BigInt(next.fencingToken ?? -1)).toBeGreaterThan(BigInt(held.token ?? 0));
      expect(store.write('next holder', next.fencingToken)).toBe(true);

      await delay(Math.max(0, 4_000 - (crossProcessNow() - stoppedAt)));
      forward(); // nothing came from the frozen process meanwhile
      const beforeResume = store.log.length;
      const resumedAt = crossProcessNow();
      worker.signal('SIGCONT');

      const lost = await worker.reply(
        (r): r is Extract<FencingReply, { type: 'lost' }> => r.type === 'lost' && r.id === id,
        5_000,
      );
      expect(['unconfirmed', 'taken']).toContain(lost.reason);
      const abortedAfterResume = lost.at - resumedAt;
      await delay(300);
      forward();
      const stale = store.log.slice(beforeResume);
      console.log(
        `frozen holder: token ${held.token}; next holder got ${next.fencingToken} ${tookAfter.toFixed(0)} ms after the SIGSTOP; ` +
          `signal aborted ('${lost.reason}') ${abortedAfterResume.toFixed(0)} ms after SIGCONT; ` +
          `${stale.length} stale writes refused, ${stale.filter((e) => e.who === 'worker').length} of them sent before its signal aborted`,
      );
      expect(abortedAfterResume).toBeGreaterThanOrEqual(0);
      expect(abortedAfterResume).toBeLessThan(2_000);
      expect(stale.length).toBeGreaterThan(0);
      expect(stale.every((entry) => entry.who.startsWith('worker') && !entry.accepted)).toBe(true);
      expect(store.write('next holder', next.fencingToken)).toBe(true);

      worker.send({ type: 'stop', id });
      await worker.reply(
        (r): r is Extract<FencingReply, { type: 'stopped' }> => r.type === 'stopped' && r.id === id,
        5_000,
      );
      expect(await next.locked()).toBe(true); // the stale holder's release did not touch it
      await next.release();
    } finally {
      worker.signal('SIGCONT');
      client.disconnect();
    }
  });
});
