/**
 * Scenario 10: the ZooKeeper rows, on a ZooKeeper the bench starts (test/support/servers.ts), side
 * by side with a floor: node-zookeeper-client by hand (create an ephemeral sequential node,
 * getChildren, watch the node ahead, delete). An uncontended row (one forked child taking and
 * releasing one key in a loop, the two contenders in interleaved rounds) and hand-off rows (N
 * forked children taking turns on one key: the loop and analysis of scenario 3,
 * bench/lib/handoff.ts). The contenders run in bench/lib/zookeeper-worker.mjs.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

import { analyze, type HandoffResult, type LoopOutcome, type Section } from './handoff.js';
import { fmt, hr, summarize, type Summary, table } from './stats.js';

const WORKER = fileURLToPath(new URL('./zookeeper-worker.mjs', import.meta.url));

export type ZkContender = 'ours' | 'raw';
const CONTENDERS: readonly ZkContender[] = ['ours', 'raw'];

export interface ZkSettings {
  /** The ZooKeeper connect string. */
  readonly servers: string;
  /** Uncontended: rounds per contender, and the length of one round (ms). */
  readonly rounds: number;
  readonly sliceMs: number;
  /** Contenders of each hand-off run. */
  readonly processes: readonly number[];
  readonly durationMs: number;
  readonly holdMs: number;
  readonly workMs: number;
}

export interface ZkUncontended {
  readonly contender: ZkContender;
  readonly ops: number;
  readonly opsPerSecond: number;
  readonly latencyMs: Summary;
}

export interface ZkHandoff {
  readonly contender: ZkContender;
  readonly processes: number;
  readonly result: HandoffResult;
}

export interface ZkResults {
  readonly uncontended: ZkUncontended[];
  readonly handoff: ZkHandoff[];
}

type Message = { type: 'ready' } | ({ type: 'done' } & Record<string, unknown>);

interface Child {
  run(settings: Record<string, unknown>): Promise<Record<string, unknown>>;
  close(): Promise<void>;
}

function start(servers: string): Promise<Child> {
  const child = fork(WORKER, [], {
    execArgv: [],
    env: { ...process.env, BENCH_ZOOKEEPER_SERVERS: servers },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let onMessage: (message: Message) => void = () => undefined;
  child.on('message', (message: Message) => onMessage(message));
  const close = async () => {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.send({ type: 'exit' });
    await exited;
  };
  return new Promise((resolve) => {
    onMessage = (message) => {
      if (message.type !== 'ready') return;
      resolve({
        run: (settings) =>
          new Promise((done) => {
            onMessage = (reply) => {
              if (reply.type === 'done') done(reply);
            };
            child.send({ type: 'run', ...settings });
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

/** Runs the uncontended row (interleaved rounds) and the hand-off rows, both contenders. */
export async function zookeeperBench(
  settings: ZkSettings,
  log: (line: string) => void,
): Promise<ZkResults> {
  const results: ZkResults = { uncontended: [], handoff: [] };
  const children = await Promise.all(
    Array.from({ length: Math.max(...settings.processes) }, () => start(settings.servers)),
  );
  try {
    const [first] = children;
    if (!first) throw new Error('no contender');
    const latencies = new Map<ZkContender, number[]>(CONTENDERS.map((c) => [c, []]));
    for (let round = 0; round < settings.rounds; round++) {
      // A B, then B A, ...: a change of machine load hits both alike.
      const order = round % 2 === 0 ? CONTENDERS : [...CONTENDERS].reverse();
      for (const contender of order) {
        const startAt = hr() + 50_000_000n;
        const reply = await first.run({
          contender,
          mode: 'uncontended',
          key: `bench-zk-uncontended-${contender}`,
          startAt: String(startAt),
          endAt: String(startAt + BigInt(settings.sliceMs) * 1_000_000n),
        });
        latencies.get(contender)?.push(...(reply['latencies'] as number[]));
      }
    }
    for (const contender of CONTENDERS) {
      const all = latencies.get(contender) ?? [];
      const row: ZkUncontended = {
        contender,
        ops: all.length,
        opsPerSecond: all.length / ((settings.rounds * settings.sliceMs) / 1000),
        latencyMs: summarize(all),
      };
      results.uncontended.push(row);
      log(
        `  zookeeper ${contender} uncontended: ${fmt(row.opsPerSecond)} ops/s, p50 ${fmt(row.latencyMs.p50, 3)} ms`,
      );
    }
    for (const n of settings.processes) {
      for (const contender of CONTENDERS) {
        const at = hr() + 200_000_000n;
        const until = at + BigInt(settings.durationMs) * 1_000_000n;
        const replies = await Promise.all(
          children.slice(0, n).map((child, worker) =>
            child.run({
              contender,
              mode: 'handoff',
              key: `bench-zk-handoff-${contender}-${n}`,
              worker,
              startAt: String(at),
              endAt: String(until),
              holdMs: settings.holdMs,
              workMs: settings.workMs,
            }),
          ),
        );
        const result = analyze(replies.map(outcomeOf), n, at, until);
        results.handoff.push({ contender, processes: n, result });
        log(
          `  zookeeper ${contender} hand-off ×${n}: ${result.sections} sections, gap p50 ${fmt(result.gap.p50, 2)} ms, ` +
            `p99 ${fmt(result.gap.p99, 2)} ms, Jain ${fmt(result.jain, 3)}` +
            (result.overlaps.length > 0 ? `, ${result.overlaps.length} OVERLAPS` : '') +
            (result.errors.length > 0 ? `, ${result.errors.length} errors` : ''),
        );
      }
    }
  } finally {
    await Promise.all(children.map((child) => child.close()));
  }
  return results;
}

const LABEL: Record<ZkContender, string> = {
  ours: 'nestjs-sherlock (ZooKeeperLock)',
  raw: 'raw floor (node-zookeeper-client by hand)',
};

/** The report's section for the ZooKeeper rows. */
export function reportZookeeper({ uncontended, handoff }: ZkResults, holdMs: number): string {
  const floor = uncontended.find((r) => r.contender === 'raw');
  return [
    table(
      ['uncontended', 'ops/s', 'p50 ms', 'p99 ms', 'vs floor'],
      uncontended.map((r) => [
        LABEL[r.contender],
        fmt(r.opsPerSecond),
        fmt(r.latencyMs.p50, 3),
        fmt(r.latencyMs.p99, 3),
        floor ? `${fmt(r.opsPerSecond / floor.opsPerSecond, 2)}×` : '',
      ]),
    ),
    '',
    table(
      [
        `hand-off (hold ${holdMs} ms)`,
        'processes',
        'sections/s',
        'gap p50 ms',
        'gap p99 ms',
        'to waiting',
        'Jain',
        'overlaps',
        'errors',
      ],
      handoff.map(({ contender, processes, result: r }) => [
        LABEL[contender],
        String(processes),
        fmt(r.sectionsPerSecond, 1),
        fmt(r.gap.p50, 2),
        fmt(r.gap.p99, 2),
        `${fmt(r.toWaiting * 100)} %`,
        fmt(r.jain, 3),
        String(r.overlaps.length),
        String(r.errors.length),
      ]),
    ),
  ].join('\n');
}
