/**
 * A small benchmark of the semaphore, apart from `npm run bench` (which is about locks): this
 * library's Redis semaphore against `redis-semaphore`'s `Semaphore`, and its Etcd and Memory
 * semaphores for reference, on servers you point it at:
 *
 *   REDIS_URL=redis://127.0.0.1:6379 ETCD_HOSTS=http://127.0.0.1:2379 \
 *     node --import tsx bench/semaphore.ts
 *
 * 1. Uncontended: one caller, acquire + release of a limit-4 semaphore in a loop (3 interleaved
 *    rounds of 1 s per contender): ops/s.
 * 2. Contended, in one process: 16 concurrent callers share 4 permits, 25 sections of 2 ms each:
 *    how long the 400 sections take, the most holders seen at once, and (Redis) the round trips
 *    the callers sent per section (commands counted on the client: a Lua script is one; the
 *    subscriber connection of our waiters is not counted), which shows the cost of waiting.
 *
 * 3. Processes: 8 and 32 processes share 4 permits (Redis), each taking a permit, holding it
 *    2 ms and giving it back, in a loop for 3 s: sections per second over all processes, and
 *    the round trips per section counted by the server (`total_commands_processed`; our
 *    waiters' SUBSCRIBE and PUBLISH included, as they are sent to the server), and how evenly
 *    the processes were served (sections per process, min–max, and Jain's index).
 *
 * `npm run bench` runs it after bench/run.ts, on servers it starts itself (without REDIS_URL).
 * Prints markdown. The numbers are comparable within one run only (a shared machine is noisy).
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { LockManager } from 'nestjs-sherlock/core';
import { Semaphore as PeerSemaphore } from 'redis-semaphore';
import { type RedisServer, startRedis } from '../test/support/servers.js';

/** A child process of scenario 3 (see `processChild`). */
const CHILD = process.env.BENCH_SEMAPHORE_CHILD;
/** The server this run started (no REDIS_URL given), stopped at the end. */
const started: RedisServer | undefined =
  process.env.REDIS_URL || CHILD ? undefined : await startRedis();
const REDIS_URL = process.env.REDIS_URL ?? started?.url ?? 'redis://127.0.0.1:6379';
const ETCD_HOSTS = process.env.ETCD_HOSTS;

interface Permit {
  acquire(): Promise<unknown>;
  release(): Promise<unknown>;
}

interface Contender {
  readonly label: string;
  /** Commands its Redis client sent so far (Redis contenders only). */
  sent?(): number;
  make(name: string, limit: number): Permit;
  close(): Promise<void>;
}

const unique = (label: string) => `bench-sem-${label}-${process.pid}-${Date.now().toString(36)}`;

/** A Redis client that counts the commands it sends. */
function countingRedis(): { redis: Redis; sent: () => number } {
  const redis = new Redis(REDIS_URL);
  let sent = 0;
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = (...args: Parameters<Redis['sendCommand']>) => {
    sent++;
    return send(...args);
  };
  return { redis, sent: () => sent };
}

function ours(backend: 'redis' | 'etcd' | 'memory'): Contender {
  const counting = backend === 'redis' ? countingRedis() : undefined;
  const manager = new LockManager(
    backend === 'memory'
      ? { backend }
      : counting
        ? { backend, client: counting.redis }
        : { backend, connection: ETCD_HOSTS ?? '' },
  );
  return {
    label: `nestjs-sherlock Semaphore (${backend})`,
    ...(counting ? { sent: counting.sent } : {}),
    make: (name, limit) => manager.semaphore(name, limit, { timeout: 120_000 }),
    close: async () => {
      await manager.close();
      await counting?.redis.quit();
    },
  };
}

function peer(retryInterval?: number): Contender {
  const { redis, sent } = countingRedis();
  return {
    label: `redis-semaphore Semaphore (retryInterval ${retryInterval ?? '10 (default)'} ms)`,
    sent,
    make: (name, limit) =>
      new PeerSemaphore(redis, name, limit, {
        acquireTimeout: 120_000,
        ...(retryInterval === undefined ? {} : { retryInterval }),
      }),
    close: async () => void (await redis.quit()),
  };
}

async function uncontended(contender: Contender, ms: number): Promise<number> {
  const permit = contender.make(unique('u'), 4);
  for (let i = 0; i < 50; i++) {
    await permit.acquire();
    await permit.release();
  }
  let ops = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    await permit.acquire();
    await permit.release();
    ops++;
  }
  return ops / (ms / 1000);
}

async function contended(contender: Contender) {
  const callers = 16;
  const sections = 25;
  const name = unique('c');
  let inside = 0;
  let most = 0;
  const before = contender.sent?.() ?? NaN;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      const permit = contender.make(name, 4);
      for (let i = 0; i < sections; i++) {
        await permit.acquire();
        inside++;
        most = Math.max(most, inside);
        await new Promise((resolve) => setTimeout(resolve, 2));
        inside--;
        await permit.release();
      }
    }),
  );
  const ms = performance.now() - start;
  const commands = (contender.sent?.() ?? NaN) - before;
  return { ms, most, perSection: commands / (callers * sections) };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1] ?? NaN;
const fmt = (n: number, digits = 0) =>
  Number.isNaN(n) ? '—' : n.toLocaleString('en-US', { maximumFractionDigits: digits });

/** What a child of scenario 3 is told (JSON in BENCH_SEMAPHORE_CHILD). */
interface ChildSettings {
  readonly contender: 'ours' | 'peer' | 'peer-100';
  readonly name: string;
}

/** A child of scenario 3: loops until `until`, then prints how many sections it ran. */
async function processChild(settings: ChildSettings): Promise<void> {
  const contender =
    settings.contender === 'ours'
      ? ours('redis')
      : peer(settings.contender === 'peer' ? undefined : 100);
  const permit = contender.make(settings.name, 4);
  let sections = 0;
  // Every child ready (its runtime and client up) before any counts: the parent says when to stop.
  const until = await new Promise<number>((resolve) => {
    process.once('message', (m: { until: number }) => resolve(m.until));
    process.send?.({ ready: true });
  });
  while (Date.now() < until) {
    await permit.acquire();
    await new Promise((resolve) => setTimeout(resolve, 2));
    await permit.release();
    sections++;
  }
  await contender.close();
  process.send?.({ sections });
}

async function commandsProcessed(redis: Redis): Promise<number> {
  const info = await redis.info('stats');
  return Number(/total_commands_processed:(\d+)/.exec(info)?.[1] ?? NaN);
}

/** Scenario 3: `processes` child processes of one contender share 4 permits for `ms`. */
async function processes(contender: ChildSettings['contender'], count: number, ms: number) {
  const name = unique(`p${count}`);
  const children = Array.from({ length: count }, () =>
    fork(fileURLToPath(import.meta.url), [], {
      execArgv: ['--import', 'tsx'],
      env: {
        ...process.env,
        REDIS_URL,
        BENCH_SEMAPHORE_CHILD: JSON.stringify({ contender, name }),
      },
    }),
  );
  const probe = new Redis(REDIS_URL);
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) =>
          child.on('message', (m: { ready?: boolean }) => m.ready && resolve()),
        ),
    ),
  );
  const before = await commandsProcessed(probe);
  const until = Date.now() + ms;
  for (const child of children) child.send({ until });
  const totals = await Promise.all(
    children.map(
      (child) =>
        new Promise<number>((resolve, reject) => {
          child.on('message', (m: { sections?: number }) => {
            if (m.sections !== undefined) resolve(m.sections);
          });
          child.on('exit', (code) => (code === 0 ? undefined : reject(new Error(`exit ${code}`))));
        }),
    ),
  );
  const commands = (await commandsProcessed(probe)) - before;
  await probe.quit();
  const sections = totals.reduce((a, b) => a + b, 0);
  // Jain's fairness index over the processes' section counts (1: all ran as many).
  const squares = totals.reduce((a, b) => a + b * b, 0);
  const jain = squares === 0 ? 0 : (sections * sections) / (totals.length * squares);
  return {
    perSecond: sections / (ms / 1000),
    perSection: commands / sections,
    min: Math.min(...totals),
    max: Math.max(...totals),
    jain,
  };
}

async function main(): Promise<void> {
  const redisContenders = [ours('redis'), peer(), peer(100)];
  const others = [...(ETCD_HOSTS ? [ours('etcd')] : []), ours('memory')];
  const all = [...redisContenders, ...others];

  console.log('### 1. Uncontended acquire + release (limit 4), ops/s, median of 3 rounds\n');
  console.log('| contender | ops/s |\n| --- | --- |');
  const rounds = new Map<Contender, number[]>(all.map((c) => [c, []]));
  for (let round = 0; round < 3; round++) {
    for (const contender of all) rounds.get(contender)?.push(await uncontended(contender, 1_000));
  }
  for (const contender of all) {
    console.log(`| ${contender.label} | ${fmt(median(rounds.get(contender) ?? []))} |`);
  }

  console.log('\n### 2. 16 callers share 4 permits, 25 sections of 2 ms each (400 sections)\n');
  console.log('| contender | total (ms) | most holders at once | round trips per section |');
  console.log('| --- | --- | --- | --- |');
  for (const contender of all) {
    const result = await contended(contender);
    console.log(
      `| ${contender.label} | ${fmt(result.ms)} | ${result.most} | ${fmt(result.perSection, 1)} |`,
    );
  }
  for (const contender of all) await contender.close();

  console.log('\n### 3. Processes share 4 permits (Redis): 2 ms sections for 3 s\n');
  console.log(
    '| contender | processes | sections/s | round trips per section (server) | sections per process, min–max | Jain |',
  );
  console.log('| --- | --- | --- | --- | --- | --- |');
  const labels = {
    ours: 'nestjs-sherlock Semaphore (redis)',
    peer: 'redis-semaphore Semaphore (retryInterval 10 (default) ms)',
    'peer-100': 'redis-semaphore Semaphore (retryInterval 100 ms)',
  } as const;
  for (const count of [8, 32]) {
    for (const contender of ['ours', 'peer', 'peer-100'] as const) {
      const result = await processes(contender, count, 3_000);
      console.log(
        `| ${labels[contender]} | ${count} | ${fmt(result.perSecond)} | ${fmt(result.perSection, 1)} | ${result.min}–${result.max} | ${fmt(result.jain, 2)} |`,
      );
    }
  }
}

if (CHILD) {
  await processChild(JSON.parse(CHILD) as ChildSettings);
} else {
  try {
    await main();
  } finally {
    await started?.stop();
  }
}
