/**
 * `npm run demo`: the lost update, and the lock that prevents it, across two replicas.
 *
 * Starts a Redis server (on a free port, as the tests do), builds the sample app and starts TWO
 * replicas of it (two Node processes) that keep their locks AND their accounts in that Redis.
 * Then fires the same concurrent transfers, spread over both replicas, at the locked endpoint
 * (`POST /accounts/transfer`, alice → bob) and at the unlocked one (`POST
 * /accounts/transfer-unsafe`, carol → dave), and prints what the balances say: money lost
 * without the lock, none with it.
 *
 * `runDemo()` is the core (given a built app and a Redis); test/e2e/demo.e2e.spec.ts runs it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { getFreePort, startRedis } from '../test/support/servers.js';

export interface DemoOptions {
  /** The built app's entry point (`sample-app/dist/main.js`). */
  main: string;
  /** The Redis both replicas share, for their locks and their accounts. */
  redisUrl: string;
  /** Prefix of the lock keys and account keys (default `demo`). */
  namespace?: string;
  /** Concurrent transfers per endpoint (default 40). */
  transfers?: number;
  /** The pause between reading and writing the balances, ms (default 10). */
  pauseMs?: number;
  /** Where the replicas' own output goes (default: nowhere). */
  log?: (line: string) => void;
}

/** One round of transfers and the balances it left. */
export interface Round {
  readonly endpoint: string;
  readonly from: string;
  readonly to: string;
  readonly transfers: number;
  readonly amount: number;
  /** Responses other than 201, as `status body`. */
  readonly failed: readonly string[];
  readonly fromBalance: number;
  readonly toBalance: number;
  readonly expectedFrom: number;
  readonly expectedTo: number;
  /** What the clients were told was paid to `to` but never reached it (overwritten updates). */
  readonly lost: number;
}

export interface DemoResult {
  readonly replicas: readonly string[];
  readonly locked: Round;
  readonly unlocked: Round;
}

const OPENING = 1_000;
const AMOUNT = 10;

interface Replica {
  readonly url: string;
  readonly child: ChildProcess;
}

async function startReplica(options: DemoOptions, name: string): Promise<Replica> {
  const port = await getFreePort();
  const child = spawn(process.execPath, [options.main], {
    env: {
      ...process.env,
      PORT: String(port),
      SHERLOCK_BACKEND: 'redis',
      REDIS_URL: options.redisUrl,
      ACCOUNTS_STORE: 'redis',
      SHERLOCK_NAMESPACE: options.namespace ?? 'demo',
      TRANSFER_PAUSE_MS: String(options.pauseMs ?? 10),
      // Long enough for every locked transfer to wait its turn on a loaded machine.
      SHERLOCK_TIMEOUT_MS: '60000',
      // The cleanup job stays out of the way (once a year).
      CLEANUP_CRON: '0 0 0 1 1 *',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = options.log;
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line.trim()) log?.(`[${name}] ${line}`);
    });
  }
  const url = `http://127.0.0.1:${port}`;
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`replica ${name} exited with code ${String(code)} before it was ready`);
  });
  const ready = (async () => {
    for (let tries = 0; tries < 300; tries++) {
      try {
        if ((await fetch(`${url}/accounts/alice`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`replica ${name} did not answer on ${url} within 30 s`);
  })();
  try {
    await Promise.race([ready, exited]);
  } catch (err) {
    await stop({ url, child });
    throw err;
  }
  exited.catch(() => undefined);
  return { url, child };
}

/** Stops a replica the way `docker stop` does (SIGTERM: Nest's shutdown hooks), SIGKILL later. */
async function stop({ child }: Replica): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function balance(url: string, id: string): Promise<number> {
  const response = await fetch(`${url}/accounts/${id}`);
  if (!response.ok) throw new Error(`GET /accounts/${id}: ${response.status}`);
  return ((await response.json()) as { balance: number }).balance;
}

async function round(
  replicas: readonly Replica[],
  endpoint: string,
  from: string,
  to: string,
  transfers: number,
): Promise<Round> {
  const responses = await Promise.all(
    Array.from({ length: transfers }, async (_, i) => {
      const { url } = replicas[i % replicas.length]!;
      const response = await fetch(`${url}${endpoint}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ from, to, amount: AMOUNT }),
      });
      return { status: response.status, text: await response.text() };
    }),
  );
  const failed = responses.filter((r) => r.status !== 201).map((r) => `${r.status} ${r.text}`);
  const paid = (transfers - failed.length) * AMOUNT;
  const [first, second] = replicas;
  const fromBalance = await balance(first!.url, from);
  const toBalance = await balance((second ?? first)!.url, to);
  return {
    endpoint,
    from,
    to,
    transfers,
    amount: AMOUNT,
    failed,
    fromBalance,
    toBalance,
    expectedFrom: OPENING - paid,
    expectedTo: OPENING + paid,
    lost: OPENING + paid - toBalance,
  };
}

/** Starts two replicas of the built app on `redisUrl`, runs both rounds, stops the replicas. */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const transfers = options.transfers ?? 40;
  const replicas: Replica[] = [];
  try {
    replicas.push(await startReplica(options, 'replica 1'));
    replicas.push(await startReplica(options, 'replica 2'));
    const locked = await round(replicas, '/accounts/transfer', 'alice', 'bob', transfers);
    const unlocked = await round(replicas, '/accounts/transfer-unsafe', 'carol', 'dave', transfers);
    return { replicas: replicas.map(({ url }) => url), locked, unlocked };
  } finally {
    await Promise.all(replicas.map(stop));
  }
}

/** The result as the lines `npm run demo` prints. */
export function describeDemo({ replicas, locked, unlocked }: DemoResult): string[] {
  const line = (label: string, r: Round) =>
    `${label} ${r.transfers - r.failed.length}/${r.transfers} answered 201; ` +
    `${r.from} ${r.fromBalance} (expected ${r.expectedFrom}), ` +
    `${r.to} ${r.toBalance} (expected ${r.expectedTo}): ` +
    (r.lost === 0 && r.fromBalance === r.expectedFrom
      ? 'nothing lost'
      : `${r.lost} of ${(r.transfers - r.failed.length) * r.amount} paid to ${r.to} LOST`);
  return [
    `Two replicas of the sample app (${replicas.join(', ')}), locks and accounts in one Redis.`,
    `${locked.transfers} concurrent transfers of ${locked.amount} on each endpoint, alternately to each replica:`,
    line('  with the lock    (POST /accounts/transfer):       ', locked),
    line('  without the lock (POST /accounts/transfer-unsafe):', unlocked),
    ...[...locked.failed, ...unlocked.failed].map((failure) => `  failed: ${failure}`),
  ];
}

async function main(): Promise<void> {
  const redis = await startRedis();
  try {
    console.log(`Redis started on ${redis.url}`);
    const result = await runDemo({
      main: fileURLToPath(new URL('./dist/main.js', import.meta.url)),
      redisUrl: redis.url,
      log: process.env['DEMO_VERBOSE'] ? (text) => console.log(text) : undefined,
    });
    for (const text of describeDemo(result)) console.log(text);
    const ok = result.locked.lost === 0 && result.locked.failed.length === 0;
    process.exitCode = ok ? 0 : 1;
  } finally {
    await redis.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
