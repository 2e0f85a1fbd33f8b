/**
 * The local backends' rows (`threads`, `cluster`): no server, so no peer to compare with. For
 * each, an uncontended row (one worker thread, or one forked child, taking and releasing one
 * key in a loop: the `threads` backend's atomics on shared memory, the `cluster` backend's IPC
 * round trip to the hub in this process) and a hand-off row (N worker threads, or N forked
 * children, taking turns on one key: the same loop and analysis as scenario 3, bench/lib/handoff.ts).
 * The contenders run in bench/lib/local-worker.mjs.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ClusterLockHub, ThreadLockTable } from 'nestjs-sherlock/core';

import { analyze, type HandoffResult, type LoopOutcome, type Section } from './handoff.js';
import { fmt, hr, summarize, type Summary, table } from './stats.js';

const WORKER = fileURLToPath(new URL('./local-worker.mjs', import.meta.url));

export type LocalBackend = 'threads' | 'cluster';

export interface LocalSettings {
  /** Length of the uncontended run (ms). */
  readonly uncontendedMs: number;
  /** Contenders of each hand-off run. */
  readonly processes: readonly number[];
  readonly durationMs: number;
  readonly holdMs: number;
  readonly workMs: number;
}

export interface LocalUncontended {
  readonly backend: LocalBackend;
  readonly ops: number;
  readonly opsPerSecond: number;
  readonly latencyMs: Summary;
}

export interface LocalHandoff {
  readonly backend: LocalBackend;
  readonly processes: number;
  readonly result: HandoffResult;
}

export interface LocalResults {
  readonly uncontended: LocalUncontended[];
  readonly handoff: LocalHandoff[];
}

type Message = { type: 'ready' } | ({ type: 'done' } & Record<string, unknown>);

/** One contender: a worker thread or a forked child, driven by messages. */
interface Contender {
  run(settings: Record<string, unknown>): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

function start(backend: LocalBackend, table: ThreadLockTable): Promise<Contender> {
  let onMessage: (message: Message) => void = () => undefined;
  let send: (message: object) => void;
  let close: () => Promise<void>;
  if (backend === 'threads') {
    const worker = new Worker(WORKER, { workerData: { buffer: table.buffer } });
    worker.on('message', (message: Message) => onMessage(message));
    send = (message) => worker.postMessage(message);
    close = async () => void (await worker.terminate());
  } else {
    const child = fork(WORKER, [], {
      execArgv: [],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const stopServing = ClusterLockHub.ofProcess().serve(child);
    child.on('message', (message: Message) => onMessage(message));
    send = (message) => child.send(message);
    close = async () => {
      stopServing();
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill();
      await exited;
    };
  }
  return new Promise((resolve) => {
    onMessage = (message) => {
      if (message.type !== 'ready') return;
      resolve({
        run: (settings) =>
          new Promise((done) => {
            onMessage = (reply) => {
              if (reply.type === 'done') done(reply);
            };
            send({ type: 'run', ...settings });
          }),
        close,
      });
    };
  });
}

const outcomeOf = (reply: Record<string, unknown>): LoopOutcome => ({
  sections: (reply['sections'] as Record<keyof Section, string>[]).map((s) => ({
    worker: Number(s.worker),
    pid: Number(s.pid),
    requested: BigInt(s.requested),
    acquired: BigInt(s.acquired),
    releasing: BigInt(s.releasing),
    released: BigInt(s.released),
  })),
  errors: reply['errors'] as string[],
});

/** Runs both rows on both local backends, one after the other. */
export async function localBackends(
  settings: LocalSettings,
  log: (line: string) => void,
): Promise<LocalResults> {
  const results: LocalResults = { uncontended: [], handoff: [] };
  const table = new ThreadLockTable();
  for (const backend of ['threads', 'cluster'] as const) {
    const contenders = await Promise.all(
      Array.from({ length: Math.max(...settings.processes) }, () => start(backend, table)),
    );
    try {
      const [first] = contenders;
      if (!first) throw new Error('no contender');
      const startAt = hr() + 100_000_000n;
      const endAt = startAt + BigInt(settings.uncontendedMs) * 1_000_000n;
      const reply = await first.run({
        mode: 'uncontended',
        key: `bench:local:${backend}:uncontended`,
        startAt: String(startAt),
        endAt: String(endAt),
      });
      const latencies = reply['latencies'] as number[];
      const row: LocalUncontended = {
        backend,
        ops: latencies.length,
        opsPerSecond: latencies.length / (settings.uncontendedMs / 1000),
        latencyMs: summarize(latencies),
      };
      results.uncontended.push(row);
      log(
        `  ${backend} uncontended: ${fmt(row.opsPerSecond)} ops/s, p50 ${fmt(row.latencyMs.p50, 3)} ms`,
      );
      for (const n of settings.processes) {
        const at = hr() + 200_000_000n;
        const until = at + BigInt(settings.durationMs) * 1_000_000n;
        const replies = await Promise.all(
          contenders.slice(0, n).map((contender, worker) =>
            contender.run({
              mode: 'handoff',
              key: `bench:local:${backend}:handoff:${n}`,
              worker,
              startAt: String(at),
              endAt: String(until),
              holdMs: settings.holdMs,
              workMs: settings.workMs,
            }),
          ),
        );
        const result = analyze(replies.map(outcomeOf), n, at, until);
        results.handoff.push({ backend, processes: n, result });
        log(
          `  ${backend} hand-off ×${n}: ${result.sections} sections, gap p50 ${fmt(result.gap.p50, 2)} ms, ` +
            `p99 ${fmt(result.gap.p99, 2)} ms, Jain ${fmt(result.jain, 3)}` +
            (result.overlaps.length > 0 ? `, ${result.overlaps.length} OVERLAPS` : '') +
            (result.errors.length > 0 ? `, ${result.errors.length} errors` : ''),
        );
      }
    } finally {
      await Promise.all(contenders.map((contender) => contender.close()));
    }
  }
  return results;
}

/** The report's section for the local backends. */
export function reportLocal({ uncontended, handoff }: LocalResults, holdMs: number): string {
  const who = (backend: LocalBackend) =>
    backend === 'threads' ? 'worker threads' : 'forked children (IPC to the hub)';
  return [
    table(
      ['uncontended', 'runs in', 'ops/s', 'p50 ms', 'p99 ms'],
      uncontended.map((r) => [
        `nestjs-sherlock (${r.backend})`,
        `one of ${who(r.backend)}`,
        fmt(r.opsPerSecond),
        fmt(r.latencyMs.p50, 3),
        fmt(r.latencyMs.p99, 3),
      ]),
    ),
    '',
    table(
      [
        `hand-off (hold ${holdMs} ms)`,
        'contenders',
        'sections/s',
        'gap p50 ms',
        'gap p99 ms',
        'to waiting',
        'Jain',
        'overlaps',
      ],
      handoff.map(({ backend, processes, result: r }) => [
        `nestjs-sherlock (${backend})`,
        `${processes} ${who(backend)}`,
        fmt(r.sectionsPerSecond, 1),
        fmt(r.gap.p50, 2),
        fmt(r.gap.p99, 2),
        `${fmt(r.toWaiting * 100)} %`,
        fmt(r.jain, 3),
        String(r.overlaps.length),
      ]),
    ),
  ].join('\n');
}
