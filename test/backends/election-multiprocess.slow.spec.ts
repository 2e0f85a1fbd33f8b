/**
 * Leader election across processes, on the real servers: 3 worker processes
 * (test/fixtures/election-worker.ts, importing the built package, each with a client of its own)
 * campaign for ONE election with a 2 s lease, and while each believes it leads it writes beats to
 * a fenced store (Redis, refusing a term older than the greatest it saw). The parent SIGKILLs the
 * leader (another takes over once the lease ran out, not before its last beat), makes the next
 * one resign (another takes over at once), then SIGSTOPs the third past its lease and resumes it
 * (another took over meanwhile; the stale leader's signal aborts and any write it makes with its
 * old term is refused). Checked on the beats, with times on the system's monotonic clock:
 * the terms strictly increase with each leadership, and no two terms' accepted beats overlap.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Redis } from 'ioredis';
import { afterAll, describe, it } from 'vitest';

import { crossProcessNow } from '../fixtures/counter-workload.js';
import type {
  Beat,
  ElectionJob,
  ElectionParentMessage,
  ElectionWorkerMessage,
} from '../fixtures/election-worker.js';
import { uniqueName } from '../support/backends.js';
import { redisUrl } from '../support/env.js';
import { delay, expectStrictlyIncreasing, SLACK_MS } from '../support/helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKER = fileURLToPath(new URL('../fixtures/election-worker.ts', import.meta.url));
const WORKERS = 3;
const EXPIRE = 2_000;
const STEP_LIMIT_MS = 60_000;

const dirs: string[] = [];
const children: ChildProcess[] = [];

afterAll(() => {
  for (const child of children) {
    if (child.exitCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

interface Worker {
  readonly job: ElectionJob;
  readonly child: ChildProcess;
  readonly messages: ElectionWorkerMessage[];
  readonly output: () => string;
}

/** Waits until `found` returns something for a message of any worker, or fails at the limit. */
async function until<T>(
  workers: readonly Worker[],
  found: (worker: Worker, message: ElectionWorkerMessage) => T | undefined,
  what: string,
): Promise<T> {
  const deadline = crossProcessNow() + STEP_LIMIT_MS;
  for (;;) {
    for (const worker of workers) {
      for (const message of worker.messages) {
        if (message.type === 'failed') throw new Error(`${worker.job.worker}: ${message.error}`);
        const value = found(worker, message);
        if (value !== undefined) return value;
      }
    }
    if (crossProcessNow() > deadline) {
      throw new Error(
        `no ${what} within ${STEP_LIMIT_MS} ms\n${workers.map((w) => w.output()).join('\n')}`,
      );
    }
    await delay(20);
  }
}

const send = (worker: Worker, message: ElectionParentMessage) => worker.child.send(message);

describe(`${WORKERS} processes campaign for one election (lease ${EXPIRE} ms)`, () => {
  it.for(['redis', 'etcd'] as const)(
    '%s: SIGKILLed leader replaced after its lease, resign hands over at once, a SIGSTOPped leader’s stale writes are refused; terms increase and never overlap',
    async (backend, { expect }) => {
      const dir = mkdtempSync(join(tmpdir(), 'sherlock-election-'));
      dirs.push(dir);
      const name = uniqueName(`elect-${backend}`);
      const workers: Worker[] = Array.from({ length: WORKERS }, (_, i) => {
        const job: ElectionJob = {
          backend,
          worker: `w${i + 1}`,
          name,
          expire: EXPIRE,
          beatMs: 25,
          rejoinMs: 200,
          fenceKey: `${name}:fence`,
          beatsKey: `${name}:beats`,
          outFile: join(dir, `w${i + 1}.jsonl`),
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
        const messages: ElectionWorkerMessage[] = [];
        child.on('message', (message: ElectionWorkerMessage) => messages.push(message));
        return { job, child, messages, output: () => `worker ${job.worker} output:\n${output}` };
      });
      const elections: { worker: Worker; term: string; at: number }[] = [];
      const nextLeader = (after: number) =>
        until(
          workers,
          (worker, m) =>
            m.type === 'elected' && m.at > after ? { worker, term: m.term, at: m.at } : undefined,
          'new leader',
        ).then((elected) => {
          elections.push(elected);
          return elected;
        });

      // 1. Someone leads; it beats for a while, then is SIGKILLed.
      const first = await nextLeader(0);
      await delay(500);
      const killedAt = crossProcessNow();
      first.worker.child.kill('SIGKILL');
      const second = await nextLeader(killedAt);
      expect(second.worker).not.toBe(first.worker);
      // Not before the dead leader's lease could have run out (it was renewed at most a third
      // of a lease before the kill), and not long after it did.
      expect(second.at - killedAt).toBeGreaterThan(EXPIRE / 3);
      expect(second.at - killedAt).toBeLessThan(EXPIRE + SLACK_MS);

      // 2. The second resigns: the third leads at once.
      await delay(500);
      const resignedAt = crossProcessNow();
      send(second.worker, { type: 'resign' });
      const third = await nextLeader(resignedAt);
      expect(third.worker).not.toBe(second.worker);
      expect(third.worker).not.toBe(first.worker);
      const handOverMs = third.at - resignedAt;
      expect(handOverMs).toBeLessThan(EXPIRE / 2);

      // 3. The third is paused past its lease: the second (campaigning again) takes over; the
      //    third, resumed, learns it lost, and what it wrote with its old term was refused.
      await delay(500);
      const stoppedAt = crossProcessNow();
      third.worker.child.kill('SIGSTOP');
      const fourth = await nextLeader(stoppedAt);
      expect(fourth.worker).toBe(second.worker);
      await delay(300);
      third.worker.child.kill('SIGCONT');
      await until(
        [third.worker],
        (_w, m) => (m.type === 'lost' && m.term === third.term ? m : undefined),
        'loss of the paused leader',
      );
      await delay(500);
      for (const worker of workers) if (worker !== first.worker) send(worker, { type: 'stop' });
      await Promise.all(
        workers
          .filter((w) => w !== first.worker)
          .map(
            (w) =>
              new Promise((resolve) =>
                w.child.exitCode !== null ? resolve(null) : w.child.once('exit', resolve),
              ),
          ),
      );

      // The beats of every worker (the killed one's up to its death).
      const beats: Beat[] = workers.flatMap(({ job }) =>
        existsSync(job.outFile)
          ? readFileSync(job.outFile, 'utf8')
              .split('\n')
              .filter(Boolean)
              .map((line) => JSON.parse(line) as Beat)
          : [],
      );
      const terms = elections.map((e) => e.term);
      expectStrictlyIncreasing(terms);
      const accepted = beats.filter((b) => b.accepted);
      const refused = beats.filter((b) => !b.accepted);
      // Every leader wrote, and every refused write came from a leader whose term was over.
      for (const { term } of elections) {
        expect(
          accepted.some((b) => b.term === term),
          `beats of term ${term}`,
        ).toBe(true);
      }
      const greatest = (t: string) => elections.some((e) => BigInt(e.term) > BigInt(t));
      for (const beat of refused) expect(greatest(beat.term)).toBe(true);
      // No overlap: the accepted beats of each term, as intervals, are disjoint and in term order.
      const spans = terms.map((term) => {
        const times = accepted.filter((b) => b.term === term).map((b) => b.at);
        return { term, from: Math.min(...times), to: Math.max(...times) };
      });
      for (let i = 1; i < spans.length; i++) {
        const [before, after] = [spans[i - 1], spans[i]];
        if (!before || !after) continue;
        expect(
          after.from,
          `term ${after.term} began before term ${before.term} ended`,
        ).toBeGreaterThan(before.to);
      }
      // The fenced store's own record: terms never go down in the order the writes landed.
      const store = new Redis(redisUrl());
      try {
        const landed = (await store.lrange(`${name}:beats`, 0, -1)).map(
          (line) => (JSON.parse(line) as { term: string }).term,
        );
        // The SIGKILLed leader may die between its write landing and its log line: at most that
        // one write is in the store and not in the logs.
        expect(landed.length - accepted.length).toBeGreaterThanOrEqual(0);
        expect(landed.length - accepted.length).toBeLessThanOrEqual(1);
        for (let i = 1; i < landed.length; i++) {
          expect(BigInt(landed[i] ?? '0') >= BigInt(landed[i - 1] ?? '0')).toBe(true);
        }
        await store.del(`${name}:beats`, `${name}:fence`);
      } finally {
        store.disconnect();
      }
      console.log(
        `${backend}: terms ${terms.join(' < ')}; kill -> new leader ${Math.round(second.at - killedAt)} ms, ` +
          `resign -> new leader ${Math.round(handOverMs)} ms, stop -> new leader ${Math.round(fourth.at - stoppedAt)} ms; ` +
          `${accepted.length} beats accepted, ${refused.length} stale refused`,
      );
    },
  );
});
