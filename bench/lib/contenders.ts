/**
 * The locks the benchmark compares, behind one small interface: this library on each backend,
 * the peers (redlock, redis-semaphore, etcd3's Lock) and the raw floors (the fewest round trips
 * a lock on that server can take). Imported both by the parent (bench/run.ts) and by the worker
 * processes (bench/worker.ts), so every contender is built the same way in both.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  Redlock,
  type Lock as RedlockLock,
  type Settings as RedlockSettings,
} from '@sesamecare-oss/redlock';
import { EtcdLockFailedError, type Etcd3, type Lock as Etcd3Lock } from 'etcd3';
import type { Redis } from 'ioredis';
import type { Client as MemjsClient } from 'memjs';
import {
  EtcdLock,
  MemcachedLock,
  MemoryLock,
  type MemoryStore,
  PostgresLock,
  RedisLock,
} from 'nestjs-sherlock/core';
import { Mutex } from 'redis-semaphore';
import { sleep } from './stats.js';

export type Backend = 'redis' | 'etcd' | 'memory' | 'memcached' | 'postgres';
export type Role = 'ours' | 'peer' | 'floor';

/** The clients of one process. */
export interface Clients {
  redis?: Redis;
  etcd?: Etcd3;
  memory?: MemoryStore;
  memcached?: MemjsClient;
  /** A pg.Pool. */
  postgres?: object;
}

/** One lock object of one contender, on one key, used by one worker. */
export interface LockHandle {
  /**
   * Takes the lock. Blocking contenders wait (up to LONG_TIMEOUT); floors make one attempt and
   * reject if the key is taken (they are only used where nobody else holds it).
   */
  acquire(): Promise<void>;
  release(): Promise<void>;
}

export interface Contender {
  readonly id: string;
  readonly label: string;
  readonly backend: Backend;
  readonly role: Role;
  /** How a blocked acquire waits, for the tables. */
  readonly waits: string;
  /** Whether a blocked acquire polls the server (the "polling peers" of the targets). */
  readonly polling: boolean;
  /** Whether `acquire()` waits for a taken lock (false for the raw floors). */
  readonly blocking: boolean;
  /** One-time setup on a process's clients (e.g. SCRIPT LOAD). */
  prepare?(clients: Clients): Promise<void>;
  make(clients: Clients, key: string): LockHandle;
}

/** Timeout of every blocking acquire in the benchmark: long enough never to fire. */
export const LONG_TIMEOUT = 120_000;
/** The lock TTL given to peers that require one (redlock's duration). */
export const PEER_TTL = 10_000;
/** This library's default retryInterval, the "tuned" setting of the polling peers. */
export const OUR_RETRY_INTERVAL = 100;

/**
 * The floors' owner token: unique per acquisition, from the CSPRNG, as cheaply as Node offers it
 * (`randomUUID` draws from a cached batch of random bytes).
 */
const token = (): string => randomUUID();

function need<T>(client: T | undefined, backend: Backend): T {
  if (client === undefined) throw new Error(`no ${backend} client in this process`);
  return client;
}

// ---------------------------------------------------------------------------------------------
// This library

const ours = (backend: Backend, waits: string): Contender => ({
  id: `ours-${backend}`,
  label: `nestjs-sherlock (${backend})`,
  backend,
  role: 'ours',
  waits,
  polling: false,
  blocking: true,
  make(clients, key) {
    const options = { timeout: LONG_TIMEOUT };
    const lock =
      backend === 'redis'
        ? new RedisLock(key, { ...options, client: need(clients.redis, backend) })
        : backend === 'etcd'
          ? new EtcdLock(key, { ...options, client: need(clients.etcd, backend) })
          : backend === 'memcached'
            ? new MemcachedLock(key, { ...options, client: need(clients.memcached, backend) })
            : backend === 'postgres'
              ? new PostgresLock(key, { ...options, client: need(clients.postgres, backend) })
              : new MemoryLock(key, { ...options, client: need(clients.memory, backend) });
    return {
      async acquire() {
        if (!(await lock.acquire())) throw new Error(`${key}: not acquired`);
      },
      release: () => lock.release(),
    };
  },
});

// ---------------------------------------------------------------------------------------------
// Redis peers

const redlocks = new WeakMap<Redis, Map<string, Redlock>>();

/** One Redlock instance per client and settings (as an application would keep one). */
function redlockFor(client: Redis, settings: Partial<RedlockSettings>): Redlock {
  let bySettings = redlocks.get(client);
  if (!bySettings) redlocks.set(client, (bySettings = new Map()));
  const id = JSON.stringify(settings);
  let redlock = bySettings.get(id);
  if (!redlock) {
    redlock = new Redlock([client], settings);
    // Redlock emits 'error' for every attempt that finds the lock taken: without a listener,
    // EventEmitter would throw it.
    redlock.on('error', () => undefined);
    bySettings.set(id, redlock);
  }
  return redlock;
}

/**
 * redlock: `retryCount: -1` in both variants, so that an acquire waits as long as the others
 * (its default, 10 retries, gives up after ~2 s); otherwise its defaults (retryDelay 200 ms,
 * retryJitter 100 ms), or retryDelay tuned to our retryInterval.
 */
const redlock = (tuned: boolean): Contender => {
  const settings: Partial<RedlockSettings> = tuned
    ? { retryCount: -1, retryDelay: OUR_RETRY_INTERVAL }
    : { retryCount: -1 };
  return {
    id: tuned ? 'redlock-tuned' : 'redlock',
    label: tuned ? `redlock (retryDelay ${OUR_RETRY_INTERVAL})` : 'redlock (defaults)',
    backend: 'redis',
    role: 'peer',
    waits: tuned ? 'polls 0–200 ms (100 ± 100)' : 'polls 100–300 ms (200 ± 100)',
    polling: true,
    blocking: true,
    make(clients, key) {
      const instance = redlockFor(need(clients.redis, 'redis'), settings);
      let held: RedlockLock | undefined;
      return {
        async acquire() {
          held = await instance.acquire([key], PEER_TTL);
        },
        async release() {
          const lock = held;
          held = undefined;
          if (!lock) throw new Error(`${key}: not held`);
          await lock.release();
        },
      };
    },
  };
};

/** redis-semaphore's Mutex: its defaults (retryInterval 10 ms) or retryInterval tuned to ours. */
const semaphore = (tuned: boolean): Contender => ({
  id: tuned ? 'redis-semaphore-tuned' : 'redis-semaphore',
  label: tuned
    ? `redis-semaphore Mutex (retryInterval ${OUR_RETRY_INTERVAL})`
    : 'redis-semaphore Mutex (defaults)',
  backend: 'redis',
  role: 'peer',
  waits: tuned ? `polls every ${OUR_RETRY_INTERVAL} ms` : 'polls every 10 ms',
  polling: true,
  blocking: true,
  make(clients, key) {
    const mutex = new Mutex(need(clients.redis, 'redis'), key, {
      acquireTimeout: LONG_TIMEOUT,
      ...(tuned ? { retryInterval: OUR_RETRY_INTERVAL } : {}),
    });
    return { acquire: () => mutex.acquire(), release: () => mutex.release() };
  },
});

// ---------------------------------------------------------------------------------------------
// Etcd peer

/**
 * etcd3's `client.lock(name)`: one attempt (lease grant + put-if-absent txn; a failed attempt
 * revokes its lease); it has no blocking acquire, so the caller retries every 100 ms (our
 * retryInterval: there is no default to compare with). Released by revoking the lease.
 */
const etcd3Lock: Contender = {
  id: 'etcd3-lock',
  label: `etcd3 Lock (retried every ${OUR_RETRY_INTERVAL} ms)`,
  backend: 'etcd',
  role: 'peer',
  waits: `polls every ${OUR_RETRY_INTERVAL} ms (caller loop)`,
  polling: true,
  blocking: true,
  make(clients, key) {
    const etcd = need(clients.etcd, 'etcd');
    let held: Etcd3Lock | undefined;
    return {
      async acquire() {
        const deadline = performance.now() + LONG_TIMEOUT;
        for (;;) {
          const lock = etcd.lock(key);
          try {
            held = await lock.acquire();
            return;
          } catch (err) {
            if (!(err instanceof EtcdLockFailedError) || performance.now() > deadline) throw err;
          }
          await sleep(OUR_RETRY_INTERVAL);
        }
      },
      async release() {
        const lock = held;
        held = undefined;
        if (!lock) throw new Error(`${key}: not held`);
        await lock.release();
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------
// Raw floors

const CAD = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0`;
const CAD_SHA = createHash('sha1').update(CAD).digest('hex');

/** Redis floor: `SET key token NX PX`, released by an EVALSHA compare-and-delete. */
const redisFloor: Contender = {
  id: 'floor-redis',
  label: 'raw floor: SET NX PX + EVALSHA del',
  backend: 'redis',
  role: 'floor',
  waits: '— (one attempt)',
  polling: false,
  blocking: false,
  async prepare(clients) {
    await need(clients.redis, 'redis').script('LOAD', CAD);
  },
  make(clients, key) {
    const redis = need(clients.redis, 'redis');
    let owner = '';
    return {
      async acquire() {
        owner = token();
        if ((await redis.set(key, owner, 'PX', PEER_TTL, 'NX')) !== 'OK') {
          throw new Error(`${key}: taken`);
        }
      },
      async release() {
        if ((await redis.evalsha(CAD_SHA, 1, key, owner)) !== 1) throw new Error(`${key}: lost`);
      },
    };
  },
};

/**
 * Memcached with memjs alone, as people write it: `add` to take, then `get` and `delete` if the
 * value is still ours (memjs 1.3 has no CAS delete, so the check and the delete are two steps:
 * not atomic). Three round trips, like ours (add with the fencing count pipelined, then gets and
 * a CAS-checked delete), which is atomic.
 */
const memjsPeer: Contender = {
  id: 'memjs',
  label: 'memjs: add + get + delete',
  backend: 'memcached',
  role: 'peer',
  waits: '— (one attempt)',
  polling: true,
  blocking: false,
  make(clients, key) {
    const memjs = need(clients.memcached, 'memcached');
    let owner = '';
    return {
      async acquire() {
        owner = token();
        if (!(await memjs.add(key, owner, { expires: 60 }))) {
          throw new Error(`${key}: taken`);
        }
      },
      async release() {
        const { value } = await memjs.get(key);
        if (value?.toString() !== owner) throw new Error(`${key}: lost`);
        await memjs.delete(key);
      },
    };
  },
};

/** Memcached floor: `add`, then `delete` without any owner check (not a safe lock). */
const memcachedFloor: Contender = {
  id: 'floor-memcached',
  label: 'raw floor: add + delete (no owner check)',
  backend: 'memcached',
  role: 'floor',
  waits: '— (one attempt)',
  polling: false,
  blocking: false,
  make(clients, key) {
    const memjs = need(clients.memcached, 'memcached');
    return {
      async acquire() {
        if (!(await memjs.add(key, token(), { expires: 60 }))) {
          throw new Error(`${key}: taken`);
        }
      },
      async release() {
        await memjs.delete(key);
      },
    };
  },
};

/** Etcd floor: a put-if-absent txn, released by a compare-value delete txn. No lease. */
const etcdFloor: Contender = {
  id: 'floor-etcd',
  label: 'raw floor: txn put-if-absent + txn delete',
  backend: 'etcd',
  role: 'floor',
  waits: '— (one attempt)',
  polling: false,
  blocking: false,
  make(clients, key) {
    const etcd = need(clients.etcd, 'etcd');
    let owner = '';
    return {
      async acquire() {
        owner = token();
        const put = etcd.put(key).value(owner);
        const { succeeded } = await etcd.if(key, 'Create', '==', 0).then(put).commit();
        if (!succeeded) throw new Error(`${key}: taken`);
      },
      async release() {
        const del = etcd.delete().key(key);
        const { succeeded } = await etcd.if(key, 'Value', '==', owner).then(del).commit();
        if (!succeeded) throw new Error(`${key}: lost`);
      },
    };
  },
};

/**
 * Informational: the Etcd floor of a lock that expires, the protocol this library uses: lease
 * grant + put-if-absent txn on the lease; delete txn, then the lease revoked in the background.
 */
const etcdLeaseFloor: Contender = {
  id: 'floor-etcd-lease',
  label: 'raw, with lease: grant + txn; txn + bg revoke',
  backend: 'etcd',
  role: 'floor',
  waits: '— (one attempt)',
  polling: false,
  blocking: false,
  make(clients, key) {
    const etcd = need(clients.etcd, 'etcd');
    let owner = '';
    let lease = '';
    return {
      async acquire() {
        owner = token();
        lease = (await etcd.leaseClient.leaseGrant({ TTL: 60 })).ID;
        const put = etcd.put(key).value(owner).lease(lease);
        const { succeeded } = await etcd.if(key, 'Create', '==', 0).then(put).commit();
        if (!succeeded) throw new Error(`${key}: taken`);
      },
      async release() {
        const del = etcd.delete().key(key);
        const { succeeded } = await etcd.if(key, 'Value', '==', owner).then(del).commit();
        etcd.leaseClient.leaseRevoke({ ID: lease }).catch(() => undefined);
        if (!succeeded) throw new Error(`${key}: lost`);
      },
    };
  },
};

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Raw direct grant: the floor of a hand-off by one message

const GRANT_ACQUIRE = `if redis.call('llen', KEYS[2]) == 0 and redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
redis.call('rpush', KEYS[2], ARGV[3] .. ' ' .. ARGV[4] .. ' ' .. ARGV[1])
return 0`;
const GRANT_RELEASE = `if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
local head = redis.call('lpop', KEYS[2])
if not head then redis.call('del', KEYS[1]) return 1 end
local channel, id, owner = string.match(head, '^(%S+) (%S+) (%S+)$')
redis.call('set', KEYS[1], owner, 'PX', ARGV[2])
redis.call('publish', channel, id)
return 1`;
const GRANT_ACQUIRE_SHA = createHash('sha1').update(GRANT_ACQUIRE).digest('hex');
const GRANT_RELEASE_SHA = createHash('sha1').update(GRANT_RELEASE).digest('hex');

/** One subscriber connection per client, one channel per process: waiter id → its grant. */
const grantChannels = new WeakMap<
  Redis,
  { channel: string; waiters: Map<string, () => void>; ready: Promise<unknown> }
>();

/**
 * The least code a strict-FIFO direct-grant hand-off over Redis pub/sub takes with ioredis: a
 * waiter pushes `<channel> <id> <token>` on a list in the same script that finds the lock taken,
 * and the release script pops the head, sets the key to its token and PUBLISHes its id; the waiter
 * holds the lock from the message alone. No fencing, no dead waiters, no timeout, no fallback: a
 * floor to compare this library's hand-off gap with, at the same K, in the same run.
 */
const redisGrantFloor: Contender = {
  id: 'floor-redis-grant',
  label: 'raw floor: direct grant by PUBLISH (Lua list)',
  backend: 'redis',
  role: 'floor',
  waits: 'queued; the release grants the head (pub/sub), nothing else',
  polling: false,
  blocking: true,
  async prepare(clients) {
    const redis = need(clients.redis, 'redis');
    await redis.script('LOAD', GRANT_ACQUIRE);
    await redis.script('LOAD', GRANT_RELEASE);
    if (!grantChannels.has(redis)) {
      const subscriber = redis.duplicate();
      const channel = `bench:grant:${randomUUID()}`;
      const waiters = new Map<string, () => void>();
      subscriber.on('message', (_channel: string, id: string) => {
        const wake = waiters.get(id);
        waiters.delete(id);
        wake?.();
      });
      grantChannels.set(redis, { channel, waiters, ready: subscriber.subscribe(channel) });
    }
    await grantChannels.get(redis)?.ready;
  },
  make(clients, key) {
    const redis = need(clients.redis, 'redis');
    const queue = `${key}:grant-queue`;
    let owner = '';
    let count = 0;
    return {
      async acquire() {
        const channels = grantChannels.get(redis);
        if (!channels) throw new Error('floor-redis-grant: not prepared');
        owner = token();
        const id = `${key}:${count++}`;
        const granted = new Promise<void>((resolve) => channels.waiters.set(id, resolve));
        const taken = await redis.evalsha(
          GRANT_ACQUIRE_SHA,
          2,
          key,
          queue,
          owner,
          PEER_TTL,
          channels.channel,
          id,
        );
        if (taken === 1) {
          channels.waiters.delete(id);
          return;
        }
        await granted;
      },
      async release() {
        const released = await redis.evalsha(GRANT_RELEASE_SHA, 2, key, queue, owner, PEER_TTL);
        if (released !== 1) throw new Error(`${key}: lost`);
      },
    };
  },
};

export const CONTENDERS: readonly Contender[] = [
  redisFloor,
  ours('redis', 'queued; the release grants the first waiter (pub/sub); 2–30 s fallback poll'),
  redlock(false),
  redlock(true),
  semaphore(false),
  semaphore(true),
  etcdFloor,
  etcdLeaseFloor,
  ours('etcd', 'queued (Mutex recipe); the release wakes the next (watch); 2 s+ fallback poll'),
  etcd3Lock,
  ours('memory', 'in-process FIFO hand-off'),
  memcachedFloor,
  ours('memcached', 'polls every retryInterval (no push)'),
  memjsPeer,
  ours('postgres', 'every waiter woken by the release (LISTEN/NOTIFY); 2 s+ fallback poll'),
  redisGrantFloor,
];

export function contender(id: string): Contender {
  const found = CONTENDERS.find((c) => c.id === id);
  if (!found) throw new Error(`unknown contender ${id}`);
  return found;
}
