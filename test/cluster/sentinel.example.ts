import { Redis } from 'ioredis';
import {
  type BaseLock,
  LockBackendError,
  LockManager,
  ReplicaAckError,
  waitForReplicas,
} from 'nestjs-sherlock';

type Sentinels = { host: string; port: number }[]; // e.g. [{ host: 'sentinel-1', port: 26379 }]

/** A manager that connects through the Sentinels, and closes that connection on close(). */
export function sentinelManager(sentinels: Sentinels): LockManager {
  return new LockManager({
    backend: 'redis',
    connection: {
      sentinels,
      name: 'mymaster', // the name in `sentinel monitor mymaster …`
      password: process.env['REDIS_PASSWORD'], // the master's (and replicas') password, if any
      sentinelPassword: process.env['SENTINEL_PASSWORD'], // the Sentinels' own, if any
      waitForReplicas: { replicas: 1, timeout: 100 }, // optional, see below
    },
    expire: 30_000,
  });
}

/** A client of your own (pass it as `client`), made to wait for a replica too. */
export function sentinelClient(sentinels: Sentinels): Redis {
  return waitForReplicas(
    new Redis({
      sentinels,
      name: 'mymaster',
      maxRetriesPerRequest: 1, // fail a call while the master is away instead of queueing it
      retryStrategy: (times) => Math.min(times * 100, 1_000), // find the new master soon
    }),
    { replicas: 1, timeout: 100 },
  );
}

/** Runs `work` under `lock`, or not at all: the lock is busy, or no replica has the grant. */
export async function runLocked(
  lock: BaseLock,
  work: () => Promise<void>,
): Promise<'done' | 'busy' | 'not replicated'> {
  try {
    if (!(await lock.acquire(false))) return 'busy';
  } catch (err) {
    if (err instanceof LockBackendError && err.cause instanceof ReplicaAckError) {
      return 'not replicated'; // nothing is held: the grant was given back
    }
    throw err;
  }
  try {
    await work();
    return 'done';
  } finally {
    await lock.release();
  }
}
