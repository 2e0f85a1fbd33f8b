/**
 * The Redis semaphore's rows of `bench:parity` (`--only=semaphore`): this library's `Semaphore`
 * (limit 4, the default 60 s expiry) against redis-semaphore's `Semaphore` (limit 4, its
 * defaults), and "our semaphore scripts, raw ioredis": ACQUIRE_PERMIT and RELEASE_PERMIT sent by
 * a bare `evalsha` with the keys and arguments the library sends (permits, fencing counter, line;
 * an owner token of the same shape; no waiter entry). Ours against the raw row is the library's
 * client-side cost, the raw row against redis-semaphore the server's. With `--baseline=`, the
 * other build's `Semaphore` too (through its own `LockManager`).
 *
 * `--only=readwrite`: this library's read-write lock, its read side and its write side, against
 * the other build's (`--baseline=`; no peer has a Redis read-write lock).
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { LockManager } from 'nestjs-sherlock/core';
import { Semaphore as PeerSemaphore } from 'redis-semaphore';
import { ACQUIRE_PERMIT, RELEASE_PERMIT } from '../../lib/backends/redis/semaphore-scripts.js';
import { siblingKey } from '../../lib/backends/redis/slots.js';
import { newOwnerToken } from '../../lib/core/timing.js';
import { type Contender, LONG_TIMEOUT } from './contenders.js';

/** The limit of every semaphore of these rows. */
const LIMIT = 4;
/** The owner token's constant tail, as the library's default manager builds it (no appName). */
const SUFFIX = `|${process.pid}|${encodeURIComponent(hostname())}|`;
/** The library's default `expire` (60 s), as the script gets it. */
const EXPIRE = '60000';

type Client = NonNullable<Parameters<Contender['make']>[0]['redis']>;
const need = (client: Client | undefined): Client => {
  if (!client) throw new Error('no redis client in this process');
  return client;
};

/** A `LockManager` class (this build's or another's) as these rows use it. */
interface Side {
  acquire(): Promise<boolean>;
  release(): Promise<void>;
}
type ManagerClass = new (options: { backend: 'redis'; client: object }) => {
  semaphore(name: string, limit: number, options: { timeout: number }): Side;
  readWrite(name: string, options: { timeout: number }): { read: Side; write: Side };
};

const managers = new Map<string, InstanceType<ManagerClass>>();

/**
 * A row of this library (this build's `LockManager` or another's): `pick` takes, from the row's
 * manager (one per row, on the process's Redis client), what one worker acquires and releases.
 */
function oursWith(
  id: string,
  label: string,
  Manager: ManagerClass,
  pick: (manager: InstanceType<ManagerClass>, key: string) => Side = (manager, key) =>
    manager.semaphore(key, LIMIT, { timeout: LONG_TIMEOUT }),
): Contender {
  return {
    id,
    label,
    backend: 'redis',
    role: 'ours',
    waits: 'as ours',
    polling: false,
    blocking: true,
    make(clients, key) {
      const client = need(clients.redis);
      let manager = managers.get(id);
      if (!manager) managers.set(id, (manager = new Manager({ backend: 'redis', client })));
      const held = pick(manager, key);
      return {
        async acquire() {
          if (!(await held.acquire())) throw new Error(`${key}: not acquired`);
        },
        release: () => held.release(),
      };
    },
  };
}

export const oursSemaphore = oursWith(
  'ours-semaphore-redis',
  `nestjs-sherlock Semaphore (redis, limit ${LIMIT})`,
  LockManager as unknown as ManagerClass,
);

export const peerSemaphore: Contender = {
  id: 'redis-semaphore-semaphore',
  label: `redis-semaphore Semaphore (limit ${LIMIT}, defaults)`,
  backend: 'redis',
  role: 'peer',
  waits: 'polls every 10 ms',
  polling: true,
  blocking: true,
  make(clients, key) {
    const permit = new PeerSemaphore(need(clients.redis), key, LIMIT, {
      acquireTimeout: LONG_TIMEOUT,
    });
    return {
      async acquire() {
        await permit.acquire();
      },
      release: () => permit.release(),
    };
  },
};

export const rawSemaphoreScripts: Contender = {
  id: 'raw-scripts-semaphore',
  label: 'our semaphore scripts, raw ioredis (EVALSHA × 2)',
  backend: 'redis',
  role: 'floor',
  waits: '— (one attempt)',
  polling: false,
  blocking: false,
  async prepare(clients) {
    const redis = need(clients.redis);
    await redis.script('LOAD', ACQUIRE_PERMIT.source);
    await redis.script('LOAD', RELEASE_PERMIT.source);
  },
  make(clients, key) {
    const redis = need(clients.redis);
    const permits = siblingKey(key, null, 'sem', `:${key}`);
    const fencing = siblingKey(key, null, 'fence');
    const line = siblingKey(key, null, 'semq', `:${key}`);
    let owner = '';
    return {
      async acquire() {
        owner = `${newOwnerToken()}|${Date.now()}${SUFFIX}`;
        const reply = await redis.evalsha(
          ACQUIRE_PERMIT.sha,
          3,
          permits,
          fencing,
          line,
          owner,
          EXPIRE,
          String(LIMIT),
          '',
        );
        if (typeof reply !== 'string' && typeof reply !== 'number') {
          throw new Error(`${key}: no permit`);
        }
      },
      async release() {
        const reply = await redis.evalsha(RELEASE_PERMIT.sha, 3, permits, fencing, line, owner);
        if (reply !== 1) throw new Error(`${key}: lost`);
      },
    };
  },
};

/** Another build's `Semaphore` (its `dist/sherlock.js`), as one more row (`--baseline=`). */
export async function baselineSemaphore(path: string): Promise<Contender> {
  const mod = (await import(pathToFileURL(resolve(path)).href)) as { LockManager: ManagerClass };
  return oursWith(
    'baseline-semaphore-redis',
    `nestjs-sherlock Semaphore (redis, limit ${LIMIT}), baseline build`,
    mod.LockManager,
  );
}

/** A read-write lock row: its `side`, through `oursWith`. */
const readWriteWith = (id: string, label: string, Manager: ManagerClass, side: 'read' | 'write') =>
  oursWith(
    id,
    label,
    Manager,
    (manager, key) => manager.readWrite(key, { timeout: LONG_TIMEOUT })[side],
  );

export const oursRead = readWriteWith(
  'ours-read-redis',
  'nestjs-sherlock read-write lock, read side (redis)',
  LockManager as unknown as ManagerClass,
  'read',
);
export const oursWrite = readWriteWith(
  'ours-write-redis',
  'nestjs-sherlock read-write lock, write side (redis)',
  LockManager as unknown as ManagerClass,
  'write',
);

/** Another build's read-write lock (its `dist/sherlock.js`), both sides (`--baseline=`). */
export async function baselineReadWrite(path: string): Promise<Contender[]> {
  const mod = (await import(pathToFileURL(resolve(path)).href)) as { LockManager: ManagerClass };
  return (['read', 'write'] as const).map((side) =>
    readWriteWith(
      `baseline-${side}-redis`,
      `nestjs-sherlock read-write lock, ${side} side (redis), baseline build`,
      mod.LockManager,
      side,
    ),
  );
}

/** Closes the managers these rows made. */
export async function closeSemaphoreManagers(): Promise<void> {
  for (const manager of managers.values()) {
    await (manager as unknown as { close(): Promise<void> }).close();
  }
  managers.clear();
}
