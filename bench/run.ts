/**
 * The benchmark: nestjs-sherlock against redlock, redis-semaphore and etcd3's Lock (and the raw
 * floors), on real Redis and Etcd servers it starts on free ports and stops at the end; and this
 * library on the PostgreSQL it starts the same way (uncontended and hand-off rows), and on the
 * local backends, threads and cluster (scenario 9: uncontended and hand-off rows, no server).
 *
 *   npm run bench                 # everything (~4 min)
 *   npm run bench -- --quick      # a short smoke run (numbers not meaningful)
 *   npm run bench -- --only=1,3   # some scenarios
 *
 * Markdown tables go to stdout, progress to stderr, the full results to
 * bench/results/<ISO timestamp>.json. See bench/README.md.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import { MemoryStore } from 'nestjs-sherlock/core';
import memjs from 'memjs';
import pg from 'pg';
import {
  startEtcd,
  startMemcached,
  startPostgres,
  startRedis,
  startZooKeeper,
} from '../test/support/servers.js';
import { type Clients, type Contender, CONTENDERS, contender } from './lib/contenders.js';
import { ACQUIRE } from '../lib/backends/redis/scripts.js';
import {
  analyze,
  type FromWorker,
  handoffLoop,
  type HandoffResult,
  type LoopOutcome,
  type LoopSettings,
  type ToWorker,
} from './lib/handoff.js';
import { DEFAULT_BASELINE, hooksOverhead, type HooksResult } from './lib/hooks.js';
import { lockedOverhead, type LockedResult } from './lib/locked.js';
import { semaphoreBench } from './lib/semaphore-scenario.js';
import { leaderHandover } from './lib/leader.js';
import { localBackends, reportLocal } from './lib/local.js';
import { reportZookeeper, zookeeperBench, type ZkResults } from './lib/zookeeper.js';
import {
  fmt,
  hr,
  ms,
  ratio,
  sleep,
  sleepUntil,
  summarize,
  type Summary,
  table,
} from './lib/stats.js';

const benchDir = fileURLToPath(new URL('.', import.meta.url));
const root = join(benchDir, '..');

// ---------------------------------------------------------------------------------------------
// Settings

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const only = argv.find((arg) => arg.startsWith('--only='));
const scenarios = new Set(
  only
    ? only
        .slice('--only='.length)
        .split(',')
        .map((s) => Number(s.trim()))
    : [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
);

const SETTINGS = {
  uncontended: { warmUp: quick ? 50 : 300, rounds: quick ? 2 : 4, sliceMs: quick ? 150 : 500 },
  parallel: { workers: 64, rounds: quick ? 1 : 2, sliceMs: quick ? 300 : 1_000 },
  handoff: {
    processes: quick ? [2, 8] : [2, 8, 32],
    durationMs: quick ? 1_000 : 3_000,
    holdMs: 1,
    workMs: 2,
  },
  waiters: {
    waiters: 20,
    settleMs: 500,
    windowMs: quick ? 1_000 : 3_000,
    // This library's steady state: its waiters' fallback polls are seconds apart (up to 33 s at
    // the back of the line), so a 3 s window right after they queue sees the first in line's
    // first poll only. Measured again once every place has polled, over one 30 s poll period.
    // The polling peers (and the idle server) are steady at once: a shorter window each.
    steady: quick
      ? {
          settleMs: 1_000,
          windowMs: 2_000,
          peerSettleMs: 500,
          peerWindowMs: 2_000,
          costTrips: 2_000,
        }
      : {
          settleMs: 15_000,
          windowMs: 30_000,
          peerSettleMs: 500,
          peerWindowMs: 10_000,
          costTrips: 20_000,
        },
  },
  locked: {
    calls: quick ? { memory: 4_000, redis: 600 } : { memory: 40_000, redis: 6_000 },
    rounds: quick ? 2 : 10,
  },
  probes: quick ? 50 : 300,
} as const;

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

const ids = (...names: string[]): Contender[] => names.map(contender);
const REDIS_BLOCKING = [
  'ours-redis',
  'redlock',
  'redlock-tuned',
  'redis-semaphore',
  'redis-semaphore-tuned',
];
const ETCD_BLOCKING = ['ours-etcd', 'etcd3-lock'];
/**
 * Scenario 3's contenders, or those of them named in BENCH_HANDOFF (comma-separated ids, e.g.
 * `BENCH_HANDOFF=floor-redis-grant,ours-redis` to compare two builds back to back quickly).
 */
const handoffOnly = (all: string[]): string[] => {
  const picked = process.env['BENCH_HANDOFF']?.split(',').map((id) => id.trim());
  return picked ? all.filter((id) => picked.includes(id)) : all;
};
/** Scenarios 1 and 2: nobody waits, so the peers' retry settings play no part: defaults only. */
const NO_WAIT = ids(
  'floor-redis',
  'ours-redis',
  'redlock',
  'redis-semaphore',
  'floor-etcd',
  'floor-etcd-lease',
  'ours-etcd',
  'etcd3-lock',
  'floor-memcached',
  'ours-memcached',
  'memjs',
  'ours-memory',
  'ours-postgres',
);

// ---------------------------------------------------------------------------------------------
// Server counters

interface Counters {
  /** Redis: total_commands_processed. */
  readonly redisCommands: number;
  /** Etcd: sum of grpc_server_msg_received_total (every request message, streams included). */
  readonly etcdRequests: number;
  /** Etcd: etcd_server_proposals_committed_total (raft writes). */
  readonly etcdWrites: number;
}

async function counters(redis: Redis, etcdUrl: string): Promise<Counters> {
  const info = await redis.info('stats');
  const redisCommands = Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? NaN);
  const metrics = await (await fetch(`${etcdUrl}/metrics`)).text();
  let etcdRequests = 0;
  let etcdWrites = NaN;
  for (const line of metrics.split('\n')) {
    const [name, value] = line.split(' ');
    if (name?.startsWith('grpc_server_msg_received_total{')) etcdRequests += Number(value);
    else if (name === 'etcd_server_proposals_committed_total') etcdWrites = Number(value);
  }
  return { redisCommands, etcdRequests, etcdWrites };
}

const ZERO: Counters = { redisCommands: 0, etcdRequests: 0, etcdWrites: 0 };

/** Counter deltas; `infoCalls` INFO commands of our own are subtracted from Redis's. */
function delta(before: Counters, after: Counters, infoCalls = 1): Counters {
  return {
    redisCommands: after.redisCommands - before.redisCommands - infoCalls,
    etcdRequests: after.etcdRequests - before.etcdRequests,
    etcdWrites: after.etcdWrites - before.etcdWrites,
  };
}

// ---------------------------------------------------------------------------------------------
// Scenario 1: uncontended acquire + release

interface UncontendedResult {
  readonly id: string;
  readonly label: string;
  readonly backend: string;
  readonly role: string;
  readonly ops: number;
  readonly opsPerSecond: number;
  readonly latencyMs: Summary;
}

async function uncontended(clients: Clients): Promise<UncontendedResult[]> {
  const { warmUp, rounds, sliceMs } = SETTINGS.uncontended;
  const state = NO_WAIT.map((c) => ({
    c,
    handle: c.make(clients, `bench:s1:${c.id}`),
    latencies: [] as number[],
    elapsedMs: 0,
  }));
  for (const s of state) {
    for (let i = 0; i < warmUp; i++) {
      await s.handle.acquire();
      await s.handle.release();
    }
  }
  // Interleaved rounds: a change of background load hits every contender alike.
  for (let round = 0; round < rounds; round++) {
    for (const s of state) {
      const start = hr();
      const end = start + BigInt(sliceMs * 1e6);
      let t = start;
      while (t < end) {
        await s.handle.acquire();
        await s.handle.release();
        const next = hr();
        s.latencies.push(ms(next - t));
        t = next;
      }
      s.elapsedMs += ms(t - start);
    }
  }
  return state.map(({ c, latencies, elapsedMs }) => ({
    id: c.id,
    label: c.label,
    backend: c.backend,
    role: c.role,
    ops: latencies.length,
    opsPerSecond: latencies.length / (elapsedMs / 1000),
    latencyMs: summarize(latencies),
  }));
}

// ---------------------------------------------------------------------------------------------
// Scenario 2: 64 concurrent workers on distinct keys, in one process

interface ParallelResult {
  readonly id: string;
  readonly label: string;
  readonly backend: string;
  readonly role: string;
  readonly ops: number;
  readonly opsPerSecond: number;
  readonly errors: number;
}

async function parallel(clients: Clients): Promise<ParallelResult[]> {
  const { workers, rounds, sliceMs } = SETTINGS.parallel;
  const state = NO_WAIT.map((c) => ({
    c,
    handles: Array.from({ length: workers }, (_, w) => c.make(clients, `bench:s2:${c.id}:${w}`)),
    ops: 0,
    errors: 0,
    elapsedMs: 0,
  }));
  for (const s of state) {
    await Promise.all(s.handles.map((h) => h.acquire().then(() => h.release())));
  }
  for (let round = 0; round < rounds; round++) {
    for (const s of state) {
      const start = hr();
      const end = start + BigInt(sliceMs * 1e6);
      await Promise.all(
        s.handles.map(async (h) => {
          while (hr() < end) {
            try {
              await h.acquire();
              await h.release();
              s.ops++;
            } catch {
              s.errors++;
            }
          }
        }),
      );
      s.elapsedMs += ms(hr() - start);
    }
  }
  return state.map(({ c, ops, errors, elapsedMs }) => ({
    id: c.id,
    label: c.label,
    backend: c.backend,
    role: c.role,
    ops,
    opsPerSecond: ops / (elapsedMs / 1000),
    errors,
  }));
}

// ---------------------------------------------------------------------------------------------
// Scenario 3: hand-off between processes

/** Bundles bench/worker.ts (with this library's dist inlined) so workers start with plain node. */
async function bundleWorker(): Promise<string> {
  // One bundle per checkout: worktrees share node_modules, and two benches must not swap code.
  const checkout = root.replace(/[^A-Za-z0-9]+/gu, '-');
  const outfile = join(
    root,
    'node_modules',
    '.cache',
    'nestjs-sherlock-bench',
    `worker${checkout}.mjs`,
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
    entryPoints: [join(benchDir, 'worker.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: ['ioredis', 'etcd3', '@sesamecare-oss/redlock', 'redis-semaphore', 'pg'],
    plugins: [inlineDist],
    logLevel: 'warning',
  });
  return outfile;
}

class Worker {
  private readonly inbox: FromWorker[] = [];
  private waiting: { resolve: (m: FromWorker) => void; reject: (e: Error) => void } | undefined;
  private exit: Error | undefined;

  constructor(readonly child: ChildProcess) {
    child.on('message', (message: FromWorker) => {
      const waiting = this.waiting;
      this.waiting = undefined;
      if (waiting) waiting.resolve(message);
      else this.inbox.push(message);
    });
    child.on('exit', (code, signal) => {
      this.exit = new Error(`worker ${child.pid} exited (code ${code}, signal ${signal})`);
      this.waiting?.reject(this.exit);
      this.waiting = undefined;
    });
  }

  send(message: ToWorker): void {
    this.child.send(message);
  }

  async expect<T extends FromWorker['type']>(
    type: T,
    timeoutMs: number,
  ): Promise<Extract<FromWorker, { type: T }>> {
    const message = await this.next(timeoutMs);
    if (message.type === 'failed') throw new Error(`worker ${this.child.pid}: ${message.error}`);
    if (message.type !== type) throw new Error(`expected ${type}, got ${message.type}`);
    return message as Extract<FromWorker, { type: T }>;
  }

  private next(timeoutMs: number): Promise<FromWorker> {
    const queued = this.inbox.shift();
    if (queued) return Promise.resolve(queued);
    if (this.exit) return Promise.reject(this.exit);
    return new Promise<FromWorker>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        reject(new Error(`worker ${this.child.pid}: no message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting = {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }
}

/** The worker processes, started once and reused for every contender. */
class WorkerPool {
  private constructor(private readonly workers: Worker[]) {}

  static async start(count: number, script: string, env: Record<string, string>) {
    const workers = Array.from(
      { length: count },
      (_, index) =>
        new Worker(
          fork(script, [], {
            execArgv: [],
            serialization: 'advanced',
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
            env: { ...process.env, ...env, BENCH_WORKER: String(index) },
          }),
        ),
    );
    const pool = new WorkerPool(workers);
    try {
      await Promise.all(workers.map((w) => w.expect('ready', 120_000)));
    } catch (err) {
      pool.kill();
      throw err;
    }
    return pool;
  }

  async run(
    id: string,
    count: number,
    key: string,
    durationMs: number,
    onPrepared: () => Promise<void>,
  ): Promise<{ outcomes: LoopOutcome[]; startAt: bigint; endAt: bigint }> {
    const active = this.workers.slice(0, count);
    for (const w of active) w.send({ type: 'prepare', contender: id, key });
    await Promise.all(active.map((w) => w.expect('prepared', 120_000)));
    await onPrepared();
    const startAt = hr() + 200_000_000n;
    const endAt = startAt + BigInt(durationMs) * 1_000_000n;
    const settings: LoopSettings = {
      holdMs: SETTINGS.handoff.holdMs,
      workMs: SETTINGS.handoff.workMs,
      endAt,
    };
    for (const w of active) w.send({ type: 'start', startAt, settings });
    const done = await Promise.all(active.map((w) => w.expect('done', durationMs + 180_000)));
    return { outcomes: done.map((d) => d.outcome), startAt, endAt };
  }

  async close(): Promise<void> {
    const exited = this.workers.map(
      (w) =>
        new Promise<void>((resolve) => {
          if (w.child.exitCode !== null || w.child.signalCode !== null) resolve();
          else w.child.once('exit', () => resolve());
        }),
    );
    for (const w of this.workers) if (w.child.connected) w.send({ type: 'exit' });
    const timeout = sleep(5_000).then(() => this.kill());
    await Promise.race([Promise.all(exited), timeout]);
  }

  kill(): void {
    for (const w of this.workers) {
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    }
  }
}

interface HandoffRow {
  readonly id: string;
  readonly label: string;
  readonly backend: string;
  readonly role: string;
  readonly polling: boolean;
  readonly processes: number;
  readonly result: HandoffResult;
  /** Server work per section (during prepare-to-done, warm-up excluded). */
  readonly serverPerSection: { readonly requests: number; readonly writes?: number };
}

/** Reference probes: the hand-off floors of each server, measured in one process, no load. */
interface HandoffProbes {
  /** Redis: one PING round trip, without load, in this run (ms). */
  readonly redisRoundTrip: Summary;
  /** Redis: release script (DEL + PUBLISH) called → message at another connection (ms). */
  readonly redisReleaseToMessage: Summary;
  /** Redis: … → and that connection's `SET NX PX` answered: a raw pub/sub hand-off (ms). */
  readonly redisRawHandoff: Summary;
  /** Etcd: delete txn called → its own reply (ms). */
  readonly etcdDeleteAck: Summary;
  /** Etcd: delete txn called → delete event at a watcher on another client (ms). */
  readonly etcdDeleteToEvent: Summary;
  /** Etcd: … → and that client's put-if-absent txn answered (ms). */
  readonly etcdRawHandoff: Summary;
  /** Etcd: … with a lease grant before the put txn, as this library's retry does (ms). */
  readonly etcdRawHandoffWithLease: Summary;
}

async function handoffProbes(redisUrl: string, etcdUrl: string): Promise<HandoffProbes> {
  const n = SETTINGS.probes;
  const holder = new Redis(redisUrl);
  const waiter = new Redis(redisUrl);
  const subscriber = new Redis(redisUrl);
  const release = `if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1])
redis.call('publish', ARGV[2], '1') return 1 end return 0`;
  let onMessage: (() => void) | undefined;
  subscriber.on('message', () => onMessage?.());
  await subscriber.subscribe('bench:probe');
  const toMessage: number[] = [];
  const handoff: number[] = [];
  const ping: number[] = [];
  for (let i = 0; i < n + 20; i++) {
    const pinged = hr();
    await waiter.ping();
    if (i >= 20) ping.push(ms(hr() - pinged));
  }
  for (let i = 0; i < n + 20; i++) {
    await holder.set('bench:probe', 'a', 'PX', 10_000);
    const got = new Promise<void>((resolve) => (onMessage = resolve));
    const start = hr();
    void holder.eval(release, 1, 'bench:probe', 'a', 'bench:probe');
    await got;
    const messaged = hr();
    await waiter.set('bench:probe', 'b', 'PX', 10_000, 'NX');
    const taken = hr();
    await waiter.del('bench:probe');
    if (i >= 20) {
      toMessage.push(ms(messaged - start));
      handoff.push(ms(taken - start));
    }
  }
  subscriber.disconnect();
  holder.disconnect();
  waiter.disconnect();

  const etcdHolder = new Etcd3({ hosts: etcdUrl });
  const etcdWaiter = new Etcd3({ hosts: etcdUrl });
  const key = 'bench:probe';
  const watcher = await etcdWaiter.watch().key(key).create();
  let onDelete: (() => void) | undefined;
  watcher.on('delete', () => onDelete?.());
  const toEvent: number[] = [];
  const acks: number[] = [];
  const etcdHandoff: number[] = [];
  const etcdHandoffLease: number[] = [];
  for (let i = 0; i < n + 20; i++) {
    const withLease = i % 2 === 1;
    await etcdHolder.put(key).value('a');
    const deleted = new Promise<void>((resolve) => (onDelete = resolve));
    const start = hr();
    let acked = 0n;
    const ack = etcdHolder
      .if(key, 'Value', '==', 'a')
      .then(etcdHolder.delete().key(key))
      .commit()
      .then(() => {
        acked = hr();
      });
    await deleted;
    const evented = hr();
    await ack;
    const put = etcdWaiter.put(key).value('b');
    if (withLease) put.lease((await etcdWaiter.leaseClient.leaseGrant({ TTL: 60 })).ID);
    await etcdWaiter.if(key, 'Create', '==', 0).then(put).commit();
    const taken = hr();
    await etcdWaiter.delete().key(key);
    if (i >= 20) {
      toEvent.push(ms(evented - start));
      acks.push(ms(acked - start));
      (withLease ? etcdHandoffLease : etcdHandoff).push(ms(taken - start));
    }
  }
  await watcher.cancel();
  etcdHolder.close();
  etcdWaiter.close();
  return {
    redisRoundTrip: summarize(ping),
    redisReleaseToMessage: summarize(toMessage),
    redisRawHandoff: summarize(handoff),
    etcdDeleteAck: summarize(acks),
    etcdDeleteToEvent: summarize(toEvent),
    etcdRawHandoff: summarize(etcdHandoff),
    etcdRawHandoffWithLease: summarize(etcdHandoffLease),
  };
}

async function handoff(
  clients: Clients,
  redisUrl: string,
  etcdUrl: string,
  postgresUrl: string,
): Promise<{ rows: HandoffRow[]; probes: HandoffProbes }> {
  const { processes, durationMs, holdMs, workMs } = SETTINGS.handoff;
  const redis = clients.redis as Redis;
  const rows: HandoffRow[] = [];
  const record = (c: Contender, n: number, result: HandoffResult, work: Counters) => {
    const perSection = (value: number) => value / Math.max(1, result.sections);
    const row: HandoffRow = {
      id: c.id,
      label: c.label,
      backend: c.backend,
      role: c.role,
      polling: c.polling,
      processes: n,
      result,
      serverPerSection:
        c.backend === 'redis'
          ? { requests: perSection(work.redisCommands) }
          : c.backend === 'etcd'
            ? { requests: perSection(work.etcdRequests), writes: perSection(work.etcdWrites) }
            : { requests: 0 },
    };
    rows.push(row);
    const r = result;
    log(
      `  ${c.id} ×${n}: ${r.sections} sections, gap p50 ${fmt(r.gap.p50, 2)} ms, p99 ${fmt(r.gap.p99, 2)} ms, ` +
        `to other p50 ${fmt(r.gapToOther.p50, 2)} ms, barged ${fmt(r.barged * 100)}%, ` +
        `to waiting ${fmt(r.toWaiting * 100)}%, Jain ${fmt(r.jain, 3)}, wait max ${fmt(r.wait.max, 0)} ms, ` +
        `wait p50 ${fmt(r.wait.p50, 1)} ms, p99 ${fmt(r.wait.p99, 1)} ms, held p50 ${fmt(r.held.p50, 2)} p99 ${fmt(r.held.p99, 2)} ms, ` +
        `per proc ${r.perWorkerMin}–${r.perWorkerMax}` +
        (r.trace
          ? `, release→message p50 ${fmt(r.trace.releaseToMessage.p50, 3)} ms, message→acquired p50 ${fmt(r.trace.messageToAcquired.p50, 3)} ms`
          : '') +
        (r.overlaps.length > 0 ? `, ${r.overlaps.length} OVERLAPS` : '') +
        (r.errors.length > 0 ? `, ${r.errors.length} errors` : ''),
    );
  };

  log('  probes: raw hand-off floors');
  const probes = await handoffProbes(redisUrl, etcdUrl);

  // Memory: in-process reference, workers as async tasks.
  const memory = contender('ours-memory');
  for (const n of handoffOnly(['ours-memory']).length > 0 ? processes : []) {
    const store = new MemoryStore();
    const key = `bench:s3:memory:${n}`;
    const handles = Array.from({ length: n }, () => memory.make({ memory: store }, key));
    for (const h of handles) {
      await h.acquire();
      await h.release();
    }
    const startAt = hr() + 50_000_000n;
    const endAt = startAt + BigInt(durationMs) * 1_000_000n;
    const outcomes = await Promise.all(
      handles.map(async (h, i) => {
        await sleepUntil(startAt);
        return handoffLoop(h, i, { holdMs, workMs, endAt });
      }),
    );
    record(memory, n, analyze(outcomes, n, startAt, endAt), delta(ZERO, ZERO, 0));
  }

  log(`  starting ${Math.max(...processes)} worker processes`);
  const script = await bundleWorker();
  const pool = await WorkerPool.start(Math.max(...processes), script, {
    BENCH_REDIS_URL: redisUrl,
    BENCH_ETCD_URL: etcdUrl,
    BENCH_POSTGRES_URL: postgresUrl,
  });
  try {
    for (const n of processes) {
      const measured = ids(
        ...handoffOnly(['floor-redis-grant', ...REDIS_BLOCKING, ...ETCD_BLOCKING, 'ours-postgres']),
      );
      for (const c of measured) {
        const key = `bench:s3:${c.id}:${n}`;
        let before = ZERO;
        const run = await pool.run(c.id, n, key, durationMs, async () => {
          before = await counters(redis, etcdUrl);
        });
        const after = await counters(redis, etcdUrl);
        if (process.env['BENCH_DUMP']) {
          // Every section of this run, for a look by hand (BENCH_DUMP=<dir>).
          const file = join(process.env['BENCH_DUMP'], `${c.id}-${n}.json`);
          const sections = run.outcomes.flatMap((o) => o.sections);
          writeFileSync(
            file,
            JSON.stringify(sections, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)),
          );
        }
        record(c, n, analyze(run.outcomes, n, run.startAt, run.endAt), delta(before, after));
      }
    }
  } finally {
    await pool.close();
  }
  return { rows, probes };
}

// ---------------------------------------------------------------------------------------------
// Scenario 4: server load of waiters

interface WaiterRow {
  readonly id: string;
  readonly label: string;
  readonly backend: string;
  readonly role: string;
  readonly polling: boolean;
  readonly waits: string;
  readonly waiters: number;
  readonly windowMs: number;
  /** Server requests per second during the window (Redis commands / Etcd request messages). */
  readonly requestsPerSecond: number;
  /** Etcd raft writes per second during the window. */
  readonly writesPerSecond?: number;
  readonly errors: number;
}

async function waiterLoad(clients: Clients, etcdUrl: string): Promise<WaiterRow[]> {
  const { waiters, settleMs, windowMs } = SETTINGS.waiters;
  const redis = clients.redis as Redis;
  const rows: WaiterRow[] = [];
  for (const c of ids(...REDIS_BLOCKING, ...ETCD_BLOCKING)) {
    const key = `bench:s4:${c.id}`;
    const holder = c.make(clients, key);
    await holder.acquire();
    let errors = 0;
    const waiting = Array.from({ length: waiters }, async () => {
      const handle = c.make(clients, key);
      try {
        await handle.acquire();
        await handle.release();
      } catch {
        errors++;
      }
    });
    await sleep(settleMs);
    const before = await counters(redis, etcdUrl);
    const start = hr();
    await sleep(windowMs);
    const after = await counters(redis, etcdUrl);
    const seconds = ms(hr() - start) / 1000;
    await holder.release();
    await Promise.all(waiting);
    const d = delta(before, after);
    const row: WaiterRow = {
      id: c.id,
      label: c.label,
      backend: c.backend,
      role: c.role,
      polling: c.polling,
      waits: c.waits,
      waiters,
      windowMs,
      requestsPerSecond: (c.backend === 'redis' ? d.redisCommands : d.etcdRequests) / seconds,
      ...(c.backend === 'etcd' ? { writesPerSecond: d.etcdWrites / seconds } : {}),
      errors,
    };
    log(`  ${c.id}: ${fmt(row.requestsPerSecond, 1)} requests/s`);
    rows.push(row);
  }
  return rows;
}

/** This library's waiters in their steady state (see SETTINGS.waiters.steady), and the peers'. */
interface SteadyRow {
  readonly id: string;
  readonly label: string;
  readonly backend: string;
  /** 'ours', 'peer', or 'idle' (the Redis server with nobody waiting: its own background work). */
  readonly role?: string;
  readonly waiters: number;
  readonly settleMs: number;
  readonly windowMs: number;
  /** Redis commands (those inside scripts included) / Etcd request messages, per second. */
  readonly requestsPerSecond: number;
  /**
   * Redis: round trips per second: script calls (EVALSHA + EVAL, this library's attempts), or
   * for a peer its commands (one `SET NX PX` per attempt, no scripts, no pipelines).
   */
  readonly callsPerSecond?: number;
  /** Redis: the server process's CPU (used_cpu_user + used_cpu_sys), ms per second. */
  readonly cpuMsPerSecond?: number;
  /**
   * Redis: time its commands ran (Σ usec of INFO commandstats, INFO excluded), µs per second.
   * Wall time, not CPU: a script the scheduler preempts on a loaded machine counts its wait.
   */
  readonly commandUsPerSecond?: number;
  /**
   * Redis: the server CPU of one of its round trips in µs, measured back to back (see
   * `cpuPerTrip`), and that times `callsPerSecond`: its CPU per second, out of the idle noise.
   */
  readonly cpuUsPerTrip?: number;
  readonly derivedCpuUsPerSecond?: number;
  readonly writesPerSecond?: number;
  readonly errors: number;
}

/**
 * The Redis server's CPU (used_cpu_user + used_cpu_sys) per round trip, in µs, for what the
 * waiters send while the lock stays held: this library's attempt of a waiter already in line
 * (the ACQUIRE script of this build with the waiter's entry: a poll), and a polling peer's
 * attempt (`SET NX PX` on the held key, redis-semaphore's). `n` of each, one after the other on
 * one connection, in alternating batches: the idle server's own work (about 2 ms/s, in ticks)
 * drowns a few polls a second, not thousands.
 */
async function cpuPerTrip(redis: Redis, n: number): Promise<{ poll: number; set: number }> {
  const [lock, counter, queue] = ['bench:s4:cost', 'bench:s4:cost:fence', 'bench:s4:cost:queue'];
  await redis.del(lock, counter, queue);
  await redis.set(lock, 'holder', 'PX', 600_000);
  const entry = 'p sherlock:wake:bench 1 waiter-token 60000';
  const poll = () => ACQUIRE.run(redis, [lock, counter, queue], ['waiter-token', '60000', entry]);
  await poll(); // queues the entry (and loads the script): every later call is a poll
  const totals = { poll: 0, set: 0 };
  const rounds = 4;
  for (let round = 0; round < rounds; round++) {
    for (const kind of ['poll', 'set'] as const) {
      const before = await redisReading(redis);
      for (let i = 0; i < n / rounds; i++) {
        if (kind === 'poll') await poll();
        else await redis.set(lock, 'peer', 'PX', 10_000, 'NX');
      }
      totals[kind] += (await redisReading(redis)).cpuMs - before.cpuMs;
    }
  }
  await redis.del(lock, counter, queue);
  return { poll: (totals.poll * 1000) / n, set: (totals.set * 1000) / n };
}

/** One reading of a Redis server's counters (one INFO command). */
interface RedisReading {
  readonly commands: number;
  /** EVALSHA + EVAL calls. */
  readonly calls: number;
  /** used_cpu_user + used_cpu_sys, in ms. */
  readonly cpuMs: number;
  /** Σ usec of INFO commandstats, INFO's own excluded. */
  readonly commandUs: number;
}

async function redisReading(redis: Redis): Promise<RedisReading> {
  const info = (await redis.call('info', 'stats', 'cpu', 'commandstats')) as string;
  const field = (name: string) =>
    Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  let calls = 0;
  let commandUs = 0;
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    if (match[1] === 'evalsha' || match[1] === 'eval') calls += Number(match[2]);
    if (match[1] !== 'info') commandUs += Number(match[3]);
  }
  return {
    commands: field('total_commands_processed'),
    calls,
    cpuMs: (field('used_cpu_user') + field('used_cpu_sys')) * 1000,
    commandUs,
  };
}

/** Per-second rates between two readings; `infoCalls` INFO commands of the bench subtracted. */
function redisRates(before: RedisReading, after: RedisReading, seconds: number, infoCalls = 1) {
  return {
    requestsPerSecond: (after.commands - before.commands - infoCalls) / seconds,
    cpuMsPerSecond: (after.cpuMs - before.cpuMs) / seconds,
    commandUsPerSecond: (after.commandUs - before.commandUs) / seconds,
    scriptCallsPerSecond: (after.calls - before.calls) / seconds,
  };
}

/**
 * 20 waiters of this library on a held Redis lock and on a held Etcd lock at the same time (two
 * servers, so they do not disturb each other's counts), measured once every waiter has made its
 * first fallback poll: the load they keep up while the lock stays held. Then, on the same Redis
 * server, the same 20 waiters of redis-semaphore (at 100 ms and at its default 10 ms), and the
 * server with nobody waiting (its own background work, subtracted from the CPU ratios).
 */
async function waiterSteadyLoad(clients: Clients, etcdUrl: string): Promise<SteadyRow[]> {
  const { waiters } = SETTINGS.waiters;
  const { settleMs, windowMs, peerSettleMs, peerWindowMs } = SETTINGS.waiters.steady;
  const redis = clients.redis as Redis;
  const rows: SteadyRow[] = [];

  // The idle server first: its background work (serverCron) over one peer window.
  {
    const before = await redisReading(redis);
    const start = hr();
    await sleep(peerWindowMs);
    const after = await redisReading(redis);
    const rates = redisRates(before, after, ms(hr() - start) / 1000);
    rows.push({
      id: 'idle-redis',
      label: 'Redis server, nobody waiting',
      backend: 'redis',
      role: 'idle',
      waiters: 0,
      settleMs: 0,
      windowMs: peerWindowMs,
      requestsPerSecond: rates.requestsPerSecond,
      callsPerSecond: rates.scriptCallsPerSecond,
      cpuMsPerSecond: rates.cpuMsPerSecond,
      commandUsPerSecond: rates.commandUsPerSecond,
      errors: 0,
    });
    log(`  idle redis: ${fmt(rates.cpuMsPerSecond, 3)} ms CPU/s`);
  }

  const contenders = ids('ours-redis', 'ours-etcd');
  let errors = 0;
  const holders = await Promise.all(
    contenders.map(async (c) => {
      const holder = c.make(clients, `bench:s4:steady:${c.id}`);
      await holder.acquire();
      return holder;
    }),
  );
  const waiting = contenders.flatMap((c) =>
    Array.from({ length: waiters }, async () => {
      const handle = c.make(clients, `bench:s4:steady:${c.id}`);
      try {
        await handle.acquire();
        await handle.release();
      } catch {
        errors++;
      }
    }),
  );
  await sleep(settleMs);
  const redisBefore = await redisReading(redis);
  const before = await counters(redis, etcdUrl);
  const start = hr();
  await sleep(windowMs);
  const after = await counters(redis, etcdUrl);
  const redisAfter = await redisReading(redis);
  const seconds = ms(hr() - start) / 1000;
  for (const holder of holders) await holder.release();
  await Promise.all(waiting);
  // Between the two readings: the first reading's INFO and counters()' two INFO.
  const rates = redisRates(redisBefore, redisAfter, seconds, 3);
  const d = delta(before, after);
  for (const c of contenders) {
    const row: SteadyRow = {
      id: c.id,
      label: c.label,
      backend: c.backend,
      role: 'ours',
      waiters,
      settleMs,
      windowMs,
      requestsPerSecond: c.backend === 'redis' ? rates.requestsPerSecond : d.etcdRequests / seconds,
      ...(c.backend === 'redis'
        ? {
            callsPerSecond: rates.scriptCallsPerSecond,
            cpuMsPerSecond: rates.cpuMsPerSecond,
            commandUsPerSecond: rates.commandUsPerSecond,
          }
        : { writesPerSecond: d.etcdWrites / seconds }),
      errors,
    };
    log(
      `  ${c.id} steady: ${fmt(row.requestsPerSecond, 2)} requests/s` +
        (row.callsPerSecond === undefined
          ? ''
          : `, ${fmt(row.callsPerSecond, 2)} script calls/s, ${fmt(row.cpuMsPerSecond ?? NaN, 3)} ms CPU/s`),
    );
    rows.push(row);
  }

  // The polling peers on the same server, one after the other.
  for (const c of ids('redis-semaphore-tuned', 'redis-semaphore')) {
    const key = `bench:s4:steady:${c.id}`;
    const holder = c.make(clients, key);
    await holder.acquire();
    let peerErrors = 0;
    const peerWaiting = Array.from({ length: waiters }, async () => {
      const handle = c.make(clients, key);
      try {
        await handle.acquire();
        await handle.release();
      } catch {
        peerErrors++;
      }
    });
    await sleep(peerSettleMs);
    const peerBefore = await redisReading(redis);
    const peerStart = hr();
    await sleep(peerWindowMs);
    const peerAfter = await redisReading(redis);
    const peerRates = redisRates(peerBefore, peerAfter, ms(hr() - peerStart) / 1000);
    await holder.release();
    await Promise.all(peerWaiting);
    rows.push({
      id: c.id,
      label: c.label,
      backend: 'redis',
      role: 'peer',
      waiters,
      settleMs: peerSettleMs,
      windowMs: peerWindowMs,
      requestsPerSecond: peerRates.requestsPerSecond,
      callsPerSecond: peerRates.requestsPerSecond,
      cpuMsPerSecond: peerRates.cpuMsPerSecond,
      commandUsPerSecond: peerRates.commandUsPerSecond,
      errors: peerErrors,
    });
    log(
      `  ${c.id} steady: ${fmt(peerRates.requestsPerSecond, 1)} requests/s, ${fmt(peerRates.cpuMsPerSecond, 3)} ms CPU/s`,
    );
  }

  const cost = await cpuPerTrip(redis, SETTINGS.waiters.steady.costTrips);
  log(`  server CPU per round trip: poll ${fmt(cost.poll, 1)} µs, SET NX ${fmt(cost.set, 1)} µs`);
  return rows.map((r) => {
    if (r.backend !== 'redis' || r.role === 'idle' || r.callsPerSecond === undefined) return r;
    const perTrip = r.role === 'ours' ? cost.poll : cost.set;
    return { ...r, cpuUsPerTrip: perTrip, derivedCpuUsPerSecond: perTrip * r.callsPerSecond };
  });
}

// ---------------------------------------------------------------------------------------------
// Report

interface Results {
  readonly startedAt: string;
  readonly environment: Record<string, unknown>;
  readonly settings: typeof SETTINGS;
  uncontended?: UncontendedResult[];
  parallel?: ParallelResult[];
  handoff?: { rows: HandoffRow[]; probes: HandoffProbes };
  waiters?: WaiterRow[];
  waitersSteady?: SteadyRow[];
  locked?: LockedResult[];
  hooks?: HooksResult;
  targets?: Target[];
}

interface Target {
  readonly target: string;
  readonly measured: string;
  readonly met: boolean;
}

const bestPeer = <T extends { role: string; backend: string }>(
  rows: readonly T[],
  backend: string,
  score: (row: T) => number,
  pick: (a: number, b: number) => number,
): number | undefined => {
  const values = rows.filter((r) => r.role === 'peer' && r.backend === backend).map(score);
  return values.length === 0 ? undefined : values.reduce((a, b) => pick(a, b));
};

function reportUncontended(rows: UncontendedResult[]): string {
  const floor = (backend: string) =>
    rows.find((r) => r.role === 'floor' && r.backend === backend && r.id !== 'floor-etcd-lease');
  return table(
    [
      'contender',
      'backend',
      'ops/s',
      'p50 ms',
      'p99 ms',
      'ops/s ÷ best peer',
      'floor ops/s ÷ this',
    ],
    rows.map((r) => {
      const best = bestPeer(rows, r.backend, (x) => x.opsPerSecond, Math.max);
      const f = floor(r.backend);
      return [
        r.label,
        r.backend,
        fmt(r.opsPerSecond),
        fmt(r.latencyMs.p50, 3),
        fmt(r.latencyMs.p99, 3),
        ratio(best === undefined ? undefined : r.opsPerSecond / best),
        ratio(f ? f.opsPerSecond / r.opsPerSecond : undefined),
      ];
    }),
  );
}

function reportParallel(rows: ParallelResult[]): string {
  const floor = (backend: string) =>
    rows.find((r) => r.role === 'floor' && r.backend === backend && r.id !== 'floor-etcd-lease');
  return table(
    ['contender', 'backend', 'ops/s (64 workers)', 'ops/s ÷ best peer', 'floor ops/s ÷ this'],
    rows.map((r) => {
      const best = bestPeer(rows, r.backend, (x) => x.opsPerSecond, Math.max);
      const f = floor(r.backend);
      return [
        r.label + (r.errors > 0 ? ` (${r.errors} errors)` : ''),
        r.backend,
        fmt(r.opsPerSecond),
        ratio(best === undefined ? undefined : r.opsPerSecond / best),
        ratio(f ? f.opsPerSecond / r.opsPerSecond : undefined),
      ];
    }),
  );
}

function reportHandoff({ rows, probes }: { rows: HandoffRow[]; probes: HandoffProbes }): string {
  const main = table(
    [
      'contender',
      'procs',
      'sections/s',
      'gap p50 ms',
      'gap p99 ms',
      'gap p50 ÷ best peer',
      'gap to another proc p50 ms',
      'barged',
      'to a waiting proc',
      'Jain',
      'wait p50 ms',
      'wait p99 ms',
      "wait p99 ms, each proc's first left out",
      'wait max ms',
      'release p50 ms',
      'sections/proc min–max',
      'starved',
      'overlaps',
      'server req/section',
    ],
    rows.map((row) => {
      const r = row.result;
      const same = rows.filter((x) => x.processes === row.processes);
      const best = bestPeer(same, row.backend, (x) => x.result.gap.p50, Math.min);
      const server =
        row.backend === 'memory'
          ? '—'
          : fmt(row.serverPerSection.requests, 1) +
            (row.serverPerSection.writes === undefined
              ? ''
              : ` (${fmt(row.serverPerSection.writes, 1)} raft writes)`);
      return [
        row.label + (r.errors.length > 0 ? ` (${r.errors.length} errors)` : ''),
        String(row.processes) + (row.backend === 'memory' ? ' tasks' : ''),
        fmt(r.sectionsPerSecond),
        fmt(r.gap.p50, 2),
        fmt(r.gap.p99, 2),
        ratio(best === undefined ? undefined : r.gap.p50 / best),
        fmt(r.gapToOther.p50, 2),
        `${fmt(r.barged * 100)}%`,
        `${fmt(r.toWaiting * 100)}%`,
        fmt(r.jain, 3),
        fmt(r.wait.p50, 1),
        fmt(r.wait.p99, 1),
        fmt(r.waitAfterFirst.p99, 1),
        fmt(r.wait.max, 0),
        fmt(r.release.p50, 2),
        `${r.perWorkerMin}–${r.perWorkerMax}`,
        String(r.starved),
        r.overlaps.length > 0 ? `**${r.overlaps.length} OVERLAPS**` : '0',
        server,
      ];
    }),
  );
  const reference = table(
    ['raw hand-off reference (one process, no load)', 'p50 ms', 'p99 ms'],
    [
      ['Redis: one round trip (PING), this run', probes.redisRoundTrip],
      [
        'Redis: release script (DEL+PUBLISH) called → message at a waiter',
        probes.redisReleaseToMessage,
      ],
      ['Redis: … → waiter SET NX PX answered (raw pub/sub hand-off)', probes.redisRawHandoff],
      ['Etcd: delete txn called → its reply', probes.etcdDeleteAck],
      [
        'Etcd: delete txn called → watch event at a waiter ("delete + one watch event")',
        probes.etcdDeleteToEvent,
      ],
      ['Etcd: … → waiter put-if-absent txn answered', probes.etcdRawHandoff],
      ['Etcd: … → waiter lease grant + put-if-absent txn answered', probes.etcdRawHandoffWithLease],
    ].map(([label, s]) => [
      label as string,
      fmt((s as Summary).p50, 2),
      fmt((s as Summary).p99, 2),
    ]),
  );
  const traced = rows.filter((row) => row.result.trace !== undefined);
  if (traced.length === 0) return `${main}\n\n${reference}`;
  // BENCH_TRACE=1: where the gap to another process goes, split at the message's arrival.
  const split = table(
    [
      'BENCH_TRACE: hand-offs to another process',
      'procs',
      'gap to another proc p50 ms',
      'release() called → message p50 / p99 ms',
      'message → acquire() resolved p50 / p99 ms',
      'release() round trip p50 ms',
    ],
    traced.map((row) => {
      const r = row.result;
      const t = r.trace as NonNullable<HandoffResult['trace']>;
      return [
        row.label,
        String(row.processes),
        fmt(r.gapToOther.p50, 3),
        `${fmt(t.releaseToMessage.p50, 3)} / ${fmt(t.releaseToMessage.p99, 3)}`,
        `${fmt(t.messageToAcquired.p50, 3)} / ${fmt(t.messageToAcquired.p99, 3)}`,
        fmt(r.release.p50, 3),
      ];
    }),
  );
  return `${main}\n\n${reference}\n\n${split}`;
}

function reportWaiters(rows: WaiterRow[]): string {
  return table(
    [
      'contender',
      'backend',
      'how it waits',
      'server req/s (20 waiters)',
      'per waiter/s',
      'raft writes/s',
      '÷ least-loaded peer',
    ],
    rows.map((r) => {
      const best = bestPeer(rows, r.backend, (x) => x.requestsPerSecond, Math.min);
      return [
        r.label + (r.errors > 0 ? ` (${r.errors} errors)` : ''),
        r.backend,
        r.waits,
        fmt(r.requestsPerSecond, 1),
        fmt(r.requestsPerSecond / r.waiters, 2),
        r.writesPerSecond === undefined ? '—' : fmt(r.writesPerSecond, 1),
        ratio(best === undefined ? undefined : r.requestsPerSecond / best),
      ];
    }),
  );
}

function reportSteady(rows: SteadyRow[], peers: readonly WaiterRow[]): string {
  const idle = rows.find((r) => r.role === 'idle')?.cpuMsPerSecond ?? 0;
  const steadyPeers = rows.filter((r) => r.role === 'peer');
  /** Ours ÷ each polling peer of 4b: commands, round trips, CPU above the idle server's. */
  const shares = (r: SteadyRow): string => {
    if (r.role !== 'ours') return '';
    if (r.backend !== 'redis' || steadyPeers.length === 0) {
      return peers
        .filter((p) => p.polling && p.backend === r.backend)
        .map((p) => `${fmt((r.requestsPerSecond / p.requestsPerSecond) * 100, 2)}% of ${p.id}`)
        .join(', ');
    }
    return steadyPeers
      .map((p) => {
        const pct = (a: number | undefined, b: number | undefined) =>
          a === undefined || b === undefined ? '—' : `${fmt((a / b) * 100, 2)}%`;
        const cpu = pct(
          Math.max(0, (r.cpuMsPerSecond ?? NaN) - idle),
          (p.cpuMsPerSecond ?? NaN) - idle,
        );
        return (
          `${p.id}: ${pct(r.requestsPerSecond, p.requestsPerSecond)} cmds, ` +
          `${pct(r.callsPerSecond, p.callsPerSecond)} trips, ` +
          `${pct(r.derivedCpuUsPerSecond, p.derivedCpuUsPerSecond)} CPU ` +
          `(window: ${cpu})`
        );
      })
      .join('; ');
  };
  return table(
    [
      'contender',
      'window',
      'server req/s (20 waiters)',
      'round trips/s',
      'commands per trip',
      'server CPU ms/s (window)',
      'CPU µs per trip',
      'trips × CPU per trip, µs/s',
      'command time (wall) µs/s',
      '÷ each polling peer (CPU: trips × per trip; window: above the idle server)',
    ],
    rows.map((r) => [
      r.label + (r.errors > 0 ? ` (${r.errors} errors)` : ''),
      `${r.settleMs / 1000}–${(r.settleMs + r.windowMs) / 1000} s`,
      fmt(r.requestsPerSecond, 2),
      r.callsPerSecond === undefined ? '—' : fmt(r.callsPerSecond, 2),
      r.callsPerSecond === undefined || r.callsPerSecond === 0
        ? '—'
        : fmt(r.requestsPerSecond / r.callsPerSecond, 1),
      r.cpuMsPerSecond === undefined ? '—' : fmt(r.cpuMsPerSecond, 3),
      r.cpuUsPerTrip === undefined ? '—' : fmt(r.cpuUsPerTrip, 1),
      r.derivedCpuUsPerSecond === undefined ? '—' : fmt(r.derivedCpuUsPerSecond, 1),
      r.commandUsPerSecond === undefined ? '—' : fmt(r.commandUsPerSecond, 1),
      shares(r),
    ]),
  );
}

function reportLocked(rows: LockedResult[]): string {
  return table(
    [
      'backend',
      'calls each',
      'LockService.run µs/call',
      '@Locked µs/call',
      '@Locked ÷ run (total)',
      '@Locked ÷ run (median round)',
      'per-round ratios',
    ],
    rows.map((r) => [
      r.backend,
      fmt(r.calls),
      fmt(r.runMicros, 1),
      fmt(r.lockedMicros, 1),
      ratio(r.ratio),
      ratio(r.medianRoundRatio),
      r.roundRatios.map((x) => fmt(x, 2)).join(' '),
    ]),
  );
}

function evaluateTargets(results: Results): Target[] {
  const targets: Target[] = [];
  const add = (target: string, measured: string, met: boolean) =>
    targets.push({ target, measured, met });

  const uncontendedRows = results.uncontended ?? [];
  {
    const rows = uncontendedRows;
    for (const backend of ['redis', 'etcd', 'memcached']) {
      const ours = rows.find((r) => r.role === 'ours' && r.backend === backend);
      const best = bestPeer(rows, backend, (x) => x.opsPerSecond, Math.max);
      const floor = rows.find((r) => r.id === `floor-${backend}`);
      if (!ours) continue;
      if (best !== undefined) {
        const x = ours.opsPerSecond / best;
        add(`uncontended ${backend}: ≥ 1.0x the fastest peer`, `${fmt(x, 2)}x`, x >= 1);
      }
      if (floor) {
        const x = floor.opsPerSecond / ours.opsPerSecond;
        add(
          `uncontended ${backend}: within 1.15x of the raw floor`,
          `${fmt(x, 2)}x slower`,
          x <= 1.15,
        );
      }
    }
  }

  if (results.handoff) {
    const { rows, probes } = results.handoff;
    for (const row of rows.filter((r) => r.role === 'ours' && r.backend !== 'memory')) {
      const n = row.processes;
      const gap = row.result.gap.p50;
      const peers = rows.filter(
        (r) =>
          r.processes === n && r.backend === row.backend && r.polling && !r.id.endsWith('-tuned'),
      );
      for (const peer of peers) {
        const x = peer.result.gap.p50 / gap;
        add(
          `hand-off ${row.backend} ×${n}: gap p50 ≥ 10x shorter than ${peer.label}`,
          `${fmt(x, 1)}x (${fmt(gap, 2)} vs ${fmt(peer.result.gap.p50, 2)} ms)`,
          x >= 10,
        );
        const other = row.result.gapToOther.p50;
        const y = peer.result.gapToOther.p50 / other;
        add(
          `hand-off ${row.backend} ×${n}: gap p50 to another process ≥ 10x shorter than ${peer.label}`,
          `${fmt(y, 1)}x (${fmt(other, 2)} vs ${fmt(peer.result.gapToOther.p50, 2)} ms)`,
          y >= 10,
        );
      }
      if (row.backend === 'redis') {
        add(`hand-off redis ×${n}: gap p50 < 1 ms`, `${fmt(gap, 2)} ms`, gap < 1);
        const rtt = probes.redisRoundTrip.p50;
        add(
          `hand-off redis ×${n}: gap p50 ≤ one round trip + 0.1 ms (PING p50 ${fmt(rtt, 2)} ms, this run)`,
          `${fmt(gap, 2)} ms (release p50 in this run: ${fmt(row.result.release.p50, 2)} ms)`,
          gap <= rtt + 0.1,
        );
        add(
          `hand-off redis ×${n}: to a waiting process ≥ 99 %`,
          `${fmt(row.result.toWaiting * 100, 1)}%`,
          row.result.toWaiting >= 0.99,
        );
        add(`hand-off redis ×${n}: Jain ≥ 0.98`, fmt(row.result.jain, 3), row.result.jain >= 0.98);
        const bound = 2 * n * (SETTINGS.handoff.holdMs + gap);
        add(
          `hand-off redis ×${n}: wait p99 ≤ 2 × K × (hold + gap) = ${fmt(bound, 1)} ms`,
          `${fmt(row.result.wait.p99, 1)} ms (max ${fmt(row.result.wait.max, 0)} ms)`,
          row.result.wait.p99 <= bound,
        );
        add(
          `hand-off redis ×${n}: wait p99, each process's first acquire left out (it connects the listener), ≤ ${fmt(bound, 1)} ms`,
          `${fmt(row.result.waitAfterFirst.p99, 1)} ms (max ${fmt(row.result.waitAfterFirst.max, 0)} ms)`,
          row.result.waitAfterFirst.p99 <= bound,
        );
      } else if (row.backend === 'etcd') {
        // "The holder's delete plus one watch event", as measured without load (the in-run
        // release time is no fair yardstick: it grows with the load the waiters put on etcd).
        const limit = probes.etcdDeleteToEvent.p50;
        add(
          `hand-off etcd ×${n}: gap p50 ≤ delete + one watch event (${fmt(limit, 2)} ms, unloaded probe)`,
          `${fmt(gap, 2)} ms (release p50 in this run: ${fmt(row.result.release.p50, 2)} ms)`,
          gap <= limit,
        );
      }
      add(
        `hand-off ${row.backend} ×${n}: no process starved`,
        `${row.result.starved} starved; sections/proc ${row.result.perWorkerMin}–${row.result.perWorkerMax}`,
        row.result.starved === 0,
      );
    }
    const overlapping = rows.filter((r) => r.result.overlaps.length > 0);
    add(
      'hand-off: no overlapping sections (every contender)',
      overlapping.length === 0
        ? 'none'
        : overlapping.map((r) => `${r.id}×${r.processes}: ${r.result.overlaps.length}`).join(', '),
      overlapping.length === 0,
    );
  }

  if (results.waiters) {
    const rows = results.waiters;
    for (const ours of rows.filter((r) => r.role === 'ours')) {
      for (const peer of rows.filter((r) => r.polling && r.backend === ours.backend)) {
        const x = ours.requestsPerSecond / peer.requestsPerSecond;
        add(
          `waiter load ${ours.backend}: ≤ 5% of ${peer.label}`,
          `${fmt(x * 100, 1)}% (${fmt(ours.requestsPerSecond, 1)} vs ${fmt(peer.requestsPerSecond, 1)} req/s)`,
          x <= 0.05,
        );
      }
    }
  }

  const steady = results.waitersSteady ?? [];
  const steadyPeers = steady.filter((r) => r.role === 'peer');
  const idleCpu = steady.find((r) => r.role === 'idle')?.cpuMsPerSecond ?? 0;
  for (const ours of steady.filter((r) => r.role === 'ours')) {
    if (ours.backend === 'redis' && steadyPeers.length > 0) {
      // Redis: against the peers measured in 4b, in commands, round trips and server CPU.
      for (const peer of steadyPeers) {
        const shares: [string, number, number, number][] = [
          ['commands', ours.requestsPerSecond, peer.requestsPerSecond, 2],
          ['round trips', ours.callsPerSecond ?? NaN, peer.callsPerSecond ?? NaN, 2],
          [
            // The peer's: the smaller of its trips × CPU per trip and its window above idle.
            'server CPU (trips × CPU per trip, µs)',
            ours.derivedCpuUsPerSecond ?? NaN,
            Math.min(
              peer.derivedCpuUsPerSecond ?? NaN,
              ((peer.cpuMsPerSecond ?? NaN) - idleCpu) * 1000,
            ),
            1,
          ],
        ];
        for (const [what, a, b, digits] of shares) {
          add(
            `waiter load redis, steady state: < 1% of ${peer.label} in ${what}`,
            `${fmt((a / b) * 100, 2)}% (${fmt(a, digits)} vs ${fmt(b, digits)}/s)`,
            a / b < 0.01,
          );
        }
      }
      continue;
    }
    for (const peer of (results.waiters ?? []).filter(
      (r) => r.polling && r.backend === ours.backend,
    )) {
      const x = ours.requestsPerSecond / peer.requestsPerSecond;
      add(
        `waiter load ${ours.backend}, steady state: < 1% of ${peer.label}`,
        `${fmt(x * 100, 2)}% (${fmt(ours.requestsPerSecond, 2)} vs ${fmt(peer.requestsPerSecond, 1)} req/s)`,
        x < 0.01,
      );
    }
  }

  for (const r of results.locked ?? []) {
    add(
      `@Locked overhead ${r.backend}: ≤ 5% (median of interleaved rounds)`,
      `${fmt((r.medianRoundRatio - 1) * 100, 1)}% (total: ${fmt((r.ratio - 1) * 100, 1)}%)`,
      r.medianRoundRatio <= 1.05,
    );
  }
  if (results.hooks) {
    const h = results.hooks;
    add(
      `event/metrics hooks with no listener, @Locked on memory: ≤ 1.05× of ${h.baseline} (median of interleaved rounds)`,
      `${fmt(h.medianRoundRatio, 3)}× (total: ${fmt(h.ratio, 3)}×)`,
      h.medianRoundRatio <= 1.05,
    );
  }
  return targets;
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const startedAt = new Date();
  log(`nestjs-sherlock bench${quick ? ' (quick)' : ''}: scenarios ${[...scenarios].join(', ')}`);
  const redisServer = await startRedis();
  const etcdServer = await startEtcd();
  const postgresServer = await startPostgres();
  const redis = new Redis(redisServer.url);
  const etcd = new Etcd3({ hosts: etcdServer.url });
  const memcachedServer = await startMemcached();
  const memcached = memjs.Client.create(memcachedServer.servers, { retries: 0 });
  const postgres = new pg.Pool({ connectionString: postgresServer.url });
  postgres.on('error', () => undefined);
  const clients: Clients = { redis, etcd, memory: new MemoryStore(), memcached, postgres };
  const redisVersion = /redis_version:(\S+)/.exec(await redis.info('server'))?.[1];
  const etcdVersion = (
    (await (await fetch(`${etcdServer.url}/version`)).json()) as {
      etcdserver?: string;
    }
  ).etcdserver;
  const results: Results = {
    startedAt: startedAt.toISOString(),
    environment: {
      node: process.version,
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      loadavgAtStart: loadavg(),
      redis: redisVersion,
      etcd: etcdVersion,
      quick,
    },
    settings: SETTINGS,
  };
  const output: string[] = [];
  let zookeeper: ZkResults | undefined;
  const section = (title: string, body: string) => {
    output.push(`## ${title}\n\n${body}\n`);
  };

  try {
    // The raw direct-grant floor runs in the worker processes only (it opens a subscriber).
    for (const c of CONTENDERS) if (c.id !== 'floor-redis-grant') await c.prepare?.(clients);
    if (scenarios.has(1)) {
      log('scenario 1: uncontended acquire + release');
      results.uncontended = await uncontended(clients);
      section(
        '1. Uncontended acquire + release (one caller, one key)',
        reportUncontended(results.uncontended),
      );
    }
    if (scenarios.has(2)) {
      log('scenario 2: 64 concurrent workers, distinct keys');
      results.parallel = await parallel(clients);
      section(
        '2. 64 concurrent workers on distinct keys (one process, one connection)',
        reportParallel(results.parallel),
      );
    }
    if (scenarios.has(3)) {
      log('scenario 3: hand-off');
      results.handoff = await handoff(clients, redisServer.url, etcdServer.url, postgresServer.url);
      section(
        `3. Hand-off on one key (hold ${SETTINGS.handoff.holdMs} ms, ${SETTINGS.handoff.workMs} ms unlocked work, both setTimeout; ${SETTINGS.handoff.durationMs / 1000} s per run)`,
        reportHandoff(results.handoff),
      );
    }
    if (scenarios.has(4)) {
      log('scenario 4: waiter load');
      results.waiters = await waiterLoad(clients, etcdServer.url);
      section(
        `4. Server load of ${SETTINGS.waiters.waiters} waiters on a held lock (${SETTINGS.waiters.windowMs / 1000} s window; Redis: total_commands_processed, Etcd: Σ grpc_server_msg_received_total)`,
        reportWaiters(results.waiters),
      );
      log('scenario 4: waiter load, steady state (this library)');
      results.waitersSteady = await waiterSteadyLoad(clients, etcdServer.url);
      const { settleMs, windowMs } = SETTINGS.waiters.steady;
      section(
        `4b. The same, steady state: this library's ${SETTINGS.waiters.waiters} waiters from ${settleMs / 1000} s to ${(settleMs + windowMs) / 1000} s after they queued (Redis and Etcd at once), then redis-semaphore's on the same Redis server, and that server idle (Redis CPU: INFO used_cpu_user + used_cpu_sys over the window, and per round trip measured back to back; command time: Σ usec of INFO commandstats, wall clock)`,
        reportSteady(results.waitersSteady, results.waiters),
      );
    }
    if (scenarios.has(5)) {
      log('scenario 5: @Locked vs LockService.run');
      results.locked = await lockedOverhead(
        redis,
        SETTINGS.locked.calls,
        SETTINGS.locked.rounds,
        log,
      );
      section(
        '5. @Locked vs LockService.run (same work, sequential calls)',
        reportLocked(results.locked),
      );
    }
    if (scenarios.has(6)) {
      log('scenario 6: semaphore vs redis-semaphore (bench/semaphore.ts)');
      section(
        '6. Semaphore: nestjs-sherlock vs redis-semaphore (bench/semaphore.ts)',
        await semaphoreBench(redisServer.url, etcdServer.url),
      );
    }
    if (scenarios.has(7)) {
      log('scenario 7: the hooks with no listener (this build vs the baseline build)');
      const baseline =
        argv.find((arg) => arg.startsWith('--baseline='))?.slice('--baseline='.length) ??
        DEFAULT_BASELINE;
      const h = await hooksOverhead(
        root,
        baseline,
        SETTINGS.locked.calls.memory,
        SETTINGS.locked.rounds,
        log,
      );
      results.hooks = h;
      section(
        `7. Event/metrics/tracing hooks with no listener: @Locked on memory, this build vs ${baseline} (side by side, one process)`,
        table(
          ['build', 'µs/call', 'ratio (total)', 'ratio (median round)', 'round ratios'],
          [
            [baseline, fmt(h.baselineMicros, 2), '1', '1', ''],
            [
              'this build',
              fmt(h.currentMicros, 2),
              fmt(h.ratio, 3),
              fmt(h.medianRoundRatio, 3),
              h.roundRatios.map((r) => fmt(r, 2)).join(' '),
            ],
          ],
        ),
      );
    }
    if (scenarios.has(8)) {
      log('scenario 8: leader hand-over');
      const leader = await leaderHandover(
        { redis: redisServer.url, etcd: etcdServer.url },
        quick ? { resign: 3, kill: 1 } : { resign: 10, kill: 3 },
        log,
      );
      (results as unknown as Record<string, unknown>)['leader'] = leader;
      section(
        '8. Leader hand-over (2 candidate processes, lease 2 s): from resign() / SIGKILL to the next elected',
        table(
          ['backend', 'resign p50', 'resign max', 'SIGKILL p50', 'SIGKILL max', 'rounds'],
          leader.map((r) => [
            r.backend,
            `${fmt(r.resign.p50, 1)} ms`,
            `${fmt(r.resign.max, 1)} ms`,
            `${fmt(r.kill.p50, 1)} ms`,
            `${fmt(r.kill.max, 1)} ms`,
            `${r.resign.n} + ${r.kill.n}`,
          ]),
        ),
      );
    }
    if (scenarios.has(9)) {
      log('scenario 9: the local backends (threads, cluster): uncontended and hand-off');
      const { holdMs, workMs, durationMs, processes } = SETTINGS.handoff;
      const local = await localBackends(
        {
          uncontendedMs: quick ? 1_000 : 3_000,
          processes: processes.slice(0, 2),
          durationMs,
          holdMs,
          workMs,
        },
        log,
      );
      (results as unknown as Record<string, unknown>)['local'] = local;
      section(
        `9. Local backends, no server (threads: worker threads of this process; cluster: forked children served by this process's hub over IPC): uncontended, and hand-off on one key (hold ${holdMs} ms, ${workMs} ms unlocked work)`,
        reportLocal(local, holdMs),
      );
    }
    if (scenarios.has(10)) {
      log('scenario 10: ZooKeeper: uncontended and hand-off, against the raw floor');
      const { holdMs, workMs, durationMs } = SETTINGS.handoff;
      const zookeeperServer = await startZooKeeper();
      try {
        zookeeper = await zookeeperBench(
          {
            servers: zookeeperServer.servers,
            rounds: SETTINGS.uncontended.rounds,
            sliceMs: SETTINGS.uncontended.sliceMs,
            processes: [2, 8],
            durationMs,
            holdMs,
            workMs,
          },
          log,
        );
      } finally {
        await zookeeperServer.stop();
      }
      (results as unknown as Record<string, unknown>)['zookeeper'] = zookeeper;
      section(
        `10. ZooKeeper (a standalone server started by the bench; each process its own session): uncontended (${SETTINGS.uncontended.rounds} interleaved rounds of ${SETTINGS.uncontended.sliceMs} ms per contender), and hand-off on one key (hold ${holdMs} ms, ${workMs} ms unlocked work), against node-zookeeper-client by hand (ephemeral sequential node, watch the one ahead, delete)`,
        reportZookeeper(zookeeper, holdMs),
      );
    }
  } finally {
    redis.disconnect();
    etcd.close();
    memcached.close();
    await postgres.end().catch(() => undefined);
    await redisServer.stop();
    await etcdServer.stop();
    await memcachedServer.stop();
    await postgresServer.stop();
  }

  results.environment['loadavgAtEnd'] = loadavg();
  results.targets = evaluateTargets(results);
  section(
    'Targets',
    table(
      ['target', 'measured', 'met'],
      results.targets.map((t) => [t.target, t.measured, t.met ? 'yes' : '**NO**']),
    ),
  );

  const header =
    `# nestjs-sherlock bench — ${results.startedAt}\n\n` +
    `Node ${process.version}, ${cpus().length} CPUs, Redis ${redisVersion}, etcd ${etcdVersion}; ` +
    `load average at start ${(results.environment['loadavgAtStart'] as number[])
      .map((x) => x.toFixed(2))
      .join(' ')}, at end ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}${quick ? ' — QUICK RUN: numbers are not meaningful' : ''}\n`;
  process.stdout.write(`${header}\n${output.join('\n')}`);

  const overlaps = [
    ...(results.handoff?.rows ?? []),
    ...(zookeeper?.handoff ?? []).map((r) => ({ ...r, label: `zookeeper ${r.contender}` })),
  ].filter((r) => r.result.overlaps.length > 0);
  for (const row of overlaps) {
    process.stdout.write(
      `\n!!!!!!!! CORRECTNESS FAILURE: ${row.label} ×${row.processes}: ${row.result.overlaps.length} overlapping critical sections, e.g. ${JSON.stringify(row.result.overlaps[0], (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))} !!!!!!!!\n`,
    );
  }

  const dir = join(benchDir, 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${results.startedAt.replace(/:/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(results, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2),
  );
  log(`results written to ${file}`);
  if (overlaps.length > 0) process.exitCode = 1;
}

await main();
