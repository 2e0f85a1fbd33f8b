/**
 * Uncontended ZooKeeper parity: this library's `ZooKeeperLock` (blocking acquire + release, as
 * scenario 10 does) against the floor, node-zookeeper-client by hand (create an ephemeral
 * sequential node, getChildren, delete), INTERLEAVED in many short rounds in one process on one
 * ZooKeeper this script starts (the order flipped every other round). With `--baseline=<path of
 * another build's dist/sherlock.js>`, that build runs too (a before/after in one run). Reports
 * the median ops/s per contender and the median of the per-round ratios with their 10th–90th
 * percentiles. Not a test: nothing is asserted.
 *
 *   node --import tsx bench/zookeeper-parity.ts [--rounds=30] [--slice=300] [--baseline=...]
 */
import { createRequire } from 'node:module';
import { loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import * as current from 'nestjs-sherlock/core';

import { startZooKeeper } from '../test/support/servers.js';
import { median, percentile } from './lib/stats.js';

const argv = process.argv.slice(2);
const arg = (name: string) =>
  argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? undefined;
const ROUNDS = Number(arg('rounds') ?? 30);
const SLICE_MS = Number(arg('slice') ?? 300);
const baselinePath = arg('baseline');

type Callback<T> = (error: Error | null, result: T) => void;
/** The part of node-zookeeper-client the floor uses (it ships no types). */
interface RawClient {
  once(event: 'connected', listener: () => void): void;
  connect(): void;
  close(): void;
  mkdirp(path: string, done: Callback<string>): void;
  create(path: string, data: Buffer, mode: number, done: Callback<string>): void;
  getChildren(path: string, done: Callback<string[]>): void;
  remove(path: string, version: number, done: Callback<void>): void;
}
const zookeeper = createRequire(import.meta.url)('node-zookeeper-client') as {
  createClient(servers: string, options: { sessionTimeout: number }): RawClient;
  CreateMode: { EPHEMERAL_SEQUENTIAL: number };
};

interface Handle {
  acquire(): Promise<unknown>;
  release(): Promise<unknown>;
}
type Sherlock = Pick<typeof current, 'ZooKeeperClient' | 'ZooKeeperLock'>;

const call = <T>(run: (done: Callback<T>) => void) =>
  new Promise<T>((resolve, reject) =>
    run((error, result) => (error ? reject(error) : resolve(result))),
  );

async function main(): Promise<void> {
  const loadAtStart = loadavg();
  const server = await startZooKeeper();
  const raw = zookeeper.createClient(server.servers, { sessionTimeout: 10_000 });
  await new Promise<void>((resolve) => {
    raw.once('connected', () => resolve());
    raw.connect();
  });
  await call<string>((done) => raw.mkdirp('/bench-raw/parity', done));
  let mine = '';
  const floor: Handle = {
    async acquire() {
      mine = await call<string>((done) =>
        raw.create(
          '/bench-raw/parity/lock-',
          Buffer.alloc(0),
          zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL,
          done,
        ),
      );
      const children = (
        await call<string[]>((done) => raw.getChildren('/bench-raw/parity', done))
      ).sort();
      if (children[0] !== mine.slice('/bench-raw/parity/'.length)) throw new Error('contended');
    },
    release: () => call<void>((done) => raw.remove(mine, -1, done)),
  };
  const ours = (lib: Sherlock, key: string): Handle & { close(): void } => {
    const client = new lib.ZooKeeperClient(server.servers, { sessionTimeout: 10_000 });
    const lock = new lib.ZooKeeperLock(key, { client, timeout: 60_000 });
    return {
      acquire: () => lock.acquire(),
      release: () => lock.release(),
      close: () => client.close(),
    };
  };
  const after = ours(current, 'parity-ours');
  const handles = new Map<string, Handle>([
    ['nestjs-sherlock', after],
    ['floor (by hand)', floor],
  ]);
  let before: (Handle & { close(): void }) | undefined;
  if (baselinePath) {
    const lib = (await import(pathToFileURL(baselinePath).href)) as Sherlock;
    before = ours(lib, 'parity-baseline');
    handles.set('baseline build', before);
  }
  const ids = [...handles.keys()];
  for (const handle of handles.values()) {
    for (let i = 0; i < 200; i++) {
      await handle.acquire();
      await handle.release();
    }
  }
  const ops = new Map<string, number[]>(ids.map((id) => [id, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const id of round % 2 === 0 ? ids : [...ids].reverse()) {
      const handle = handles.get(id)!;
      let cycles = 0;
      const start = performance.now();
      while (performance.now() - start < SLICE_MS) {
        await handle.acquire();
        await handle.release();
        cycles++;
      }
      ops.get(id)!.push((cycles / (performance.now() - start)) * 1000);
    }
  }
  const ratios = (a: string, b: string) =>
    ops
      .get(a)!
      .map((o, i) => o / ops.get(b)![i]!)
      .sort((x, y) => x - y);
  const out = [
    `# ZooKeeper uncontended parity: ${ROUNDS} interleaved rounds of ${SLICE_MS} ms`,
    '',
    `load average at start ${loadAtStart.map((l) => l.toFixed(2)).join(' / ')}, at end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' / ')}`,
    '',
    '| contender | ops/s (median round) | nestjs-sherlock / it (median of rounds) | p10–p90 |',
    '| --- | --: | --: | --: |',
  ];
  for (const id of ids) {
    const r = ratios('nestjs-sherlock', id);
    const self = id === 'nestjs-sherlock';
    out.push(
      `| ${id} | ${median(ops.get(id)!).toFixed(0)} | ${self ? '—' : `${median(r).toFixed(2)}x`} | ${
        self ? '—' : `${percentile(r, 10).toFixed(2)}–${percentile(r, 90).toFixed(2)}`
      } |`,
    );
  }
  if (before) {
    const r = ratios('baseline build', 'floor (by hand)');
    out.push(
      '',
      `baseline build / floor: ${median(r).toFixed(2)}x (p10–p90 ${percentile(r, 10).toFixed(2)}–${percentile(r, 90).toFixed(2)})`,
    );
  }
  process.stdout.write(`${out.join('\n')}\n`);
  after.close();
  before?.close();
  raw.close();
  await server.stop();
}

await main();
