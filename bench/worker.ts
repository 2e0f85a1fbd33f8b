/**
 * A hand-off worker process (scenario 3). The parent bundles this file with esbuild and forks
 * it with plain `node`, once per worker, and reuses the processes for every contender:
 * `prepare` builds the contender's lock object (and warms it up on a private key), `start`
 * runs the loop from a common instant and answers with the recorded sections.
 *
 * Environment: BENCH_WORKER (index), BENCH_REDIS_URL, BENCH_ETCD_URL, BENCH_POSTGRES_URL;
 * BENCH_TRACE=1 times each pub/sub message's arrival (see Section.woken).
 */
import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import pg from 'pg';
import { type Clients, contender, type LockHandle } from './lib/contenders.js';
import { type FromWorker, handoffLoop, type ToWorker, trace } from './lib/handoff.js';
import { hr, sleepUntil } from './lib/stats.js';

const WARM_UP = 20;

const index = Number(process.env['BENCH_WORKER']);
const redisUrl = process.env['BENCH_REDIS_URL'];
const etcdUrl = process.env['BENCH_ETCD_URL'];
if (!Number.isInteger(index) || !redisUrl || !etcdUrl) {
  throw new Error('BENCH_WORKER, BENCH_REDIS_URL and BENCH_ETCD_URL are required');
}

// BENCH_TRACE=1: note when each pub/sub message reaches this process (before any listener runs).
if (process.env['BENCH_TRACE'] === '1') {
  const emit = Redis.prototype.emit;
  Redis.prototype.emit = function (this: Redis, event: string | symbol, ...args: unknown[]) {
    if (event === 'message' || event === 'smessage') trace.messageAt = hr();
    return emit.call(this, event, ...args);
  };
}

const postgresUrl = process.env['BENCH_POSTGRES_URL'];
const postgres = postgresUrl ? new pg.Pool({ connectionString: postgresUrl }) : undefined;
postgres?.on('error', () => undefined);
const clients: Clients = {
  redis: new Redis(redisUrl),
  etcd: new Etcd3({ hosts: etcdUrl }),
  ...(postgres ? { postgres } : {}),
};
let handle: LockHandle | undefined;

const send = (message: FromWorker): void => {
  process.send?.(message);
};

async function onMessage(message: ToWorker): Promise<void> {
  switch (message.type) {
    case 'prepare': {
      const chosen = contender(message.contender);
      await chosen.prepare?.(clients);
      // Warm up (JIT, connections, scripts) on a key of our own, then build the measured lock.
      const warm = chosen.make(clients, `${message.key}:warm:${index}`);
      for (let i = 0; i < WARM_UP; i++) {
        await warm.acquire();
        await warm.release();
      }
      handle = chosen.make(clients, message.key);
      send({ type: 'prepared' });
      return;
    }
    case 'start': {
      if (!handle) throw new Error('start before prepare');
      await sleepUntil(message.startAt);
      const outcome = await handoffLoop(handle, index, message.settings);
      handle = undefined;
      send({ type: 'done', outcome });
      return;
    }
    case 'exit':
      await clients.redis?.quit().catch(() => undefined);
      clients.etcd?.close();
      await postgres?.end().catch(() => undefined);
      process.disconnect();
      setTimeout(() => process.exit(0), 2_000).unref();
      return;
  }
}

process.on('message', (message: ToWorker) => {
  onMessage(message).catch((err: unknown) => {
    send({
      type: 'failed',
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
  });
});

await clients.redis?.ping();
await clients.etcd?.get('bench:ping').string();
send({ type: 'ready' });
