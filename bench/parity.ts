/**
 * Uncontended parity micro-bench (issue 11 part 3): this library's lock against its fastest peer
 * on the same server, INTERLEAVED in many short alternating rounds in one process (A B A B ...,
 * the order flipped every other round), so that a change of machine load hits both alike. For
 * each pair it reports the median of the per-round ratios (our ops/s over the peer's: above 1.0 we
 * are faster) with its spread (the 10th and 90th percentiles of the rounds' ratios), and what the
 * server saw per acquire + release cycle: Redis commands (`INFO commandstats`, scripts' inner
 * commands included, our own INFO subtracted) and Memcached requests (`stats`), and the client's
 * socket writes per cycle (round trips, pipelined requests counting once).
 *
 *   npm run bench:parity                       # Redis and Memcached, 40 rounds of 300 cycles
 *   npm run bench:parity -- --rounds=20 --cycles=200 --only=redis
 *   npm run bench:parity -- --only=redis --baseline=/tmp/mainbuild/dist/sherlock.js
 *   npm run bench:parity -- --only=semaphore  # the Redis semaphore against redis-semaphore's
 *   npm run bench:parity -- --only=readwrite --baseline=...  # the read-write lock, both builds
 *
 * `--baseline=` adds another build of this library (its `dist/sherlock.js`, in a checkout with
 * its own node_modules or a link to them) as one more Redis, Memcached and Redis semaphore
 * contender: a before / after in the same alternating rounds.
 *
 * Starts its own redis-server and memcached on free ports (as `npm run bench` does). Not a test:
 * the numbers go to stdout (markdown) and nothing is asserted.
 */
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import memjs from 'memjs';
import { startMemcached, startRedis } from '../test/support/servers.js';
import {
  type Clients,
  contender as listed,
  type Contender,
  type LockHandle,
  LONG_TIMEOUT,
} from './lib/contenders.js';
import { rawScripts } from './lib/raw-scripts.js';
import {
  baselineReadWrite,
  baselineSemaphore,
  closeSemaphoreManagers,
  oursRead,
  oursSemaphore,
  oursWrite,
  peerSemaphore,
  rawSemaphoreScripts,
} from './lib/semaphore-parity.js';
import { fmt, hr, median, ms, percentile, table } from './lib/stats.js';

const argv = process.argv.slice(2);
const arg = (name: string, fallback: number): number => {
  const found = argv.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.slice(name.length + 3)) : fallback;
};
const only = argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);
const ROUNDS = arg('rounds', 40);
const CYCLES = arg('cycles', 300);
const WARM_UP = arg('warmup', 500);
const baselinePath = argv.find((a) => a.startsWith('--baseline='))?.slice('--baseline='.length);

/** A lock class of another build, as `new RedisLock(name, options)` takes its arguments. */
type LockClassOf = new (
  name: string,
  options: { timeout: number; client: object },
) => { acquire(): Promise<boolean>; release(): Promise<void> };

/** Another build's Redis and Memcached locks, as contenders (`--baseline=`). */
async function baselineContenders(path: string): Promise<Contender[]> {
  const mod = (await import(pathToFileURL(resolve(path)).href)) as {
    RedisLock: LockClassOf;
    MemcachedLock: LockClassOf;
  };
  const of = (backend: 'redis' | 'memcached', LockClass: LockClassOf): Contender => ({
    id: `baseline-${backend}`,
    label: `nestjs-sherlock (${backend}), baseline build`,
    backend,
    role: 'ours',
    waits: 'as ours',
    polling: false,
    blocking: true,
    make(clients, key) {
      const client = clients[backend];
      if (!client) throw new Error(`no ${backend} client in this process`);
      const lock = new LockClass(key, { timeout: LONG_TIMEOUT, client });
      return {
        async acquire() {
          if (!(await lock.acquire())) throw new Error(`${key}: not acquired`);
        },
        release: () => lock.release(),
      };
    },
  });
  return [of('redis', mod.RedisLock), of('memcached', mod.MemcachedLock)];
}
const baselines =
  baselinePath === undefined
    ? []
    : [
        ...(await baselineContenders(baselinePath)),
        await baselineSemaphore(baselinePath),
        ...(await baselineReadWrite(baselinePath)),
      ];
const baselineOf = (id: string) => baselines.filter((b) => b.id === id);

/** Counts a socket's non-empty writes (each goes through the TCP stack on its own). */
function countWrites(socket: { write: (...args: never[]) => boolean }): () => number {
  let writes = 0;
  const write = socket.write.bind(socket) as (...args: never[]) => boolean;
  socket.write = (...args: never[]) => {
    const [data] = args as unknown as [{ length?: number } | undefined];
    if (data?.length !== 0) writes++;
    return write(...args);
  };
  return () => writes;
}

interface Pair {
  /** What `--only=` names. */
  readonly name: 'redis' | 'memcached' | 'semaphore' | 'readwrite';
  readonly backend: 'redis' | 'memcached';
  readonly ours: string;
  readonly peers: readonly string[];
  /**
   * Splits ours / peer in two: `via` (the library's own server work without the library, e.g.
   * our scripts by raw ioredis) against `peer`, reported after the table.
   */
  readonly split?: { readonly via: string; readonly peer: string };
}

/** The bench's contenders, and this bench's own rows (raw scripts, the semaphores). */
const OWN_ROWS = [
  rawScripts,
  oursSemaphore,
  peerSemaphore,
  rawSemaphoreScripts,
  oursRead,
  oursWrite,
];
const contender = (id: string): Contender =>
  OWN_ROWS.find((c) => c.id === id) ?? baselines.find((b) => b.id === id) ?? listed(id);

const PAIRS: readonly Pair[] = [
  {
    name: 'redis',
    backend: 'redis',
    ours: 'ours-redis',
    peers: [
      'redis-semaphore',
      'floor-redis',
      rawScripts.id,
      ...baselineOf('baseline-redis').map((b) => b.id),
    ],
    split: { via: rawScripts.id, peer: 'redis-semaphore' },
  },
  {
    name: 'memcached',
    backend: 'memcached',
    ours: 'ours-memcached',
    peers: ['memjs', 'floor-memcached', ...baselineOf('baseline-memcached').map((b) => b.id)],
  },
  {
    name: 'semaphore',
    backend: 'redis',
    ours: oursSemaphore.id,
    peers: [
      peerSemaphore.id,
      rawSemaphoreScripts.id,
      ...baselineOf('baseline-semaphore-redis').map((b) => b.id),
    ],
    split: { via: rawSemaphoreScripts.id, peer: peerSemaphore.id },
  },
  // The read-write lock's two sides, each against the other build's (`--baseline=`).
  {
    name: 'readwrite',
    backend: 'redis',
    ours: oursRead.id,
    peers: baselineOf('baseline-read-redis').map((b) => b.id),
  },
  {
    name: 'readwrite',
    backend: 'redis',
    ours: oursWrite.id,
    peers: baselineOf('baseline-write-redis').map((b) => b.id),
  },
];

/** Client CPU time (user + system, µs) spent in the last `cycles()` call. */
let lastCpu = 0;

async function cycles(handle: LockHandle, n: number): Promise<number> {
  const cpu = process.cpuUsage();
  const start = hr();
  for (let i = 0; i < n; i++) {
    await handle.acquire();
    await handle.release();
  }
  const elapsed = ms(hr() - start);
  const used = process.cpuUsage(cpu);
  lastCpu = used.user + used.system;
  return elapsed;
}

async function redisCommands(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  let total = 0;
  for (const match of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gmu)) {
    total += Number(match[2]);
  }
  return total;
}

async function memcachedRequests(client: memjs.Client): Promise<number> {
  const stats = await new Promise<Record<string, string>>((resolve, reject) => {
    client.stats((err, _server, s) => (err ? reject(err) : s && resolve(s)));
  });
  return ['cmd_get', 'cmd_set', 'cmd_touch', 'delete_hits', 'delete_misses']
    .concat(['incr_hits', 'incr_misses', 'cas_hits', 'cas_misses', 'cas_badval'])
    .reduce((sum, name) => sum + Number(stats[name] ?? 0), 0);
}

async function main(): Promise<void> {
  const load = loadavg();
  const redisServer = await startRedis();
  const memcachedServer = await startMemcached();
  const redis = new Redis(redisServer.url);
  const memcached = memjs.Client.create(memcachedServer.servers, { retries: 0 });
  const counterRedis = new Redis(redisServer.url);
  const counterMemcached = memjs.Client.create(memcachedServer.servers, { retries: 0 });
  await redis.ping();
  await counterRedis.ping();
  await memcached.get('parity:warm');
  const redisWrites = countWrites(
    (redis as unknown as { stream: { write: (...a: never[]) => boolean } }).stream,
  );
  const memServer = (memcached as unknown as { servers: { _socket?: unknown }[] }).servers[0];
  const clients: Clients = { redis, memcached };
  for (const id of ['floor-redis', rawScripts.id, rawSemaphoreScripts.id]) {
    await contender(id).prepare?.(clients);
  }
  const memcachedWrites = () => {
    const sock = memServer?._socket as { __writes?: () => number } | undefined;
    return sock?.__writes?.() ?? NaN;
  };
  const sock = memServer?._socket as
    ({ write: (...a: never[]) => boolean; __writes?: () => number } & object) | undefined;
  if (sock) sock.__writes = countWrites(sock);

  const out: string[] = [
    `# Uncontended parity: ${ROUNDS} alternating rounds of ${CYCLES} acquire + release cycles`,
    '',
    `Node ${process.version}, load average at start ${load.map((l) => l.toFixed(2)).join(' / ')}`,
    '',
  ];
  const rows: string[][] = [];
  const splits: string[] = [];
  for (const pair of PAIRS) {
    if (only && only !== pair.name) continue;
    const ids = [pair.ours, ...pair.peers];
    const handles = new Map(ids.map((id) => [id, contender(id).make(clients, `parity:${id}`)]));
    const serverCount = () =>
      pair.backend === 'redis' ? redisCommands(counterRedis) : memcachedRequests(counterMemcached);
    const writes = pair.backend === 'redis' ? redisWrites : memcachedWrites;
    // What one cycle costs on the wire, measured alone for each contender.
    const perCycle = new Map<string, { commands: number; writes: number }>();
    for (const id of ids) {
      const handle = handles.get(id)!;
      await cycles(handle, WARM_UP);
      const before = await serverCount();
      const writesBefore = writes();
      await cycles(handle, 1_000);
      const writesAfter = writes();
      const after = await serverCount();
      // Subtract the counting INFO itself (Redis counts it when it runs).
      const own = pair.backend === 'redis' ? 1 : 0;
      perCycle.set(id, {
        commands: (after - before - own) / 1_000,
        writes: (writesAfter - writesBefore) / 1_000,
      });
    }
    // Alternating rounds: per round, each contender's ops/s, then our ratio to each peer.
    const opsPerSecond = new Map<string, number[]>(ids.map((id) => [id, []]));
    const cpuPerCycle = new Map<string, number[]>(ids.map((id) => [id, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? ids : [...ids].reverse();
      for (const id of order) {
        const elapsed = await cycles(handles.get(id)!, CYCLES);
        opsPerSecond.get(id)!.push((CYCLES / elapsed) * 1000);
        cpuPerCycle.get(id)!.push(lastCpu / CYCLES);
      }
    }
    const ourOps = opsPerSecond.get(pair.ours)!;
    if (pair.split) {
      const via = opsPerSecond.get(pair.split.via)!;
      const peer = opsPerSecond.get(pair.split.peer)!;
      const ratios = via.map((v, i) => v / peer[i]!).sort((a, b) => a - b);
      const spread = `${fmt(percentile(ratios, 10), 2)}–${fmt(percentile(ratios, 90), 2)}`;
      splits.push(
        `${pair.name}: ${contender(pair.split.via).label} / ${contender(pair.split.peer).label}` +
          ` = ${fmt(median(ratios), 2)}x (p10–p90 ${spread}): the server's share of the gap;` +
          ` ours / ${contender(pair.split.via).label} (in the table) is the client's.`,
      );
    }
    for (const id of ids) {
      const theirs = opsPerSecond.get(id)!;
      const ratios = ourOps.map((o, i) => o / theirs[i]!).sort((a, b) => a - b);
      const cost = perCycle.get(id)!;
      rows.push([
        pair.name,
        contender(id).label,
        fmt(median(theirs)),
        id === pair.ours ? '—' : `${fmt(median(ratios), 2)}x`,
        id === pair.ours
          ? '—'
          : `${fmt(percentile(ratios, 10), 2)}–${fmt(percentile(ratios, 90), 2)}`,
        fmt(cost.commands, 2),
        fmt(cost.writes, 2),
        fmt(median(cpuPerCycle.get(id)!), 1),
      ]);
    }
  }
  out.push(
    table(
      [
        'server',
        'contender',
        'ops/s (median round)',
        'ours / it (median of rounds)',
        'p10–p90 of rounds',
        'server cmds / cycle',
        'socket writes / cycle',
        'client CPU µs / cycle (median round)',
      ],
      rows,
    ),
    '',
    ...splits.flatMap((line) => [line, '']),
    `load average at end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}`,
  );
  process.stdout.write(`${out.join('\n')}\n`);
  await closeSemaphoreManagers();
  redis.disconnect();
  counterRedis.disconnect();
  memcached.close();
  counterMemcached.close();
  await redisServer.stop();
  await memcachedServer.stop();
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error)?.stack ?? err)}\n`);
  process.exit(1);
});
