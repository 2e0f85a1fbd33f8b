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
 * Prints markdown. The numbers are comparable within one run only (a shared machine is noisy).
 */
import { Redis } from 'ioredis';
import { LockManager } from 'nestjs-sherlock/core';
import { Semaphore as PeerSemaphore } from 'redis-semaphore';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
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
}

await main();
