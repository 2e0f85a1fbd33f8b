/**
 * A chaos worker process: takes one lock in a loop and records every critical section. The
 * parent (test/chaos/harness.ts) bundles this file with esbuild (the built package inlined) and
 * starts it with plain `node`, its settings as JSON in CHAOS_WORKER.
 *
 * Each section: acquire (blocking, with a timeout), record its begin, read the shared counter
 * file, wait `holdMs`, write counter + 1, release, record the section. Overlapping sections lose updates, which the final count shows,
 * independently of the recorded times. Every section, failed acquire and lost-lock signal is
 * appended to `recordFile` as one JSON line; times are `crossProcessNow()` (the monotonic clock) in ms,
 * comparable across processes of one machine. The worker stops after `sections` sections, at
 * `until`, or after the section in progress when the parent sends `{ type: 'stop' }`.
 */
import { appendFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import memjs from 'memjs';
import pg from 'pg';
import {
  type BaseLock,
  backends,
  EtcdLock,
  LockBackendError,
  LockManager,
  LockTimeoutError,
  MemcachedLock,
  PostgresLock,
  RedisLock,
  RedisQuorum,
  RedlockLock,
  ZooKeeperClient,
  ZooKeeperLock,
} from 'nestjs-sherlock/core';
import { crossProcessNow } from '../fixtures/counter-workload.js';

export type ChaosBackend = 'redis' | 'etcd' | 'memcached' | 'redlock' | 'postgres' | 'zookeeper';

/**
 * What the workers take: a lock (default), a semaphore permit of `limit`, or a side of a
 * read-write lock (worker ids that are multiples of `writeEvery` write, the others read).
 */
export type ChaosPrimitive = 'lock' | 'semaphore' | 'readwrite';

/** What a section held: the lock, a permit, or a read-write lock's read or write side. */
export type HeldMode = 'lock' | 'permit' | 'read' | 'write';

export interface WorkerSettings {
  readonly id: number;
  readonly backend: ChaosBackend;
  /**
   * redis: a URL; etcd: hosts, comma-separated; memcached: servers; redlock: URLs, comma-separated;
   * postgres: a URL; zookeeper: a connect string.
   */
  readonly address: string;
  /** zookeeper: the session timeout, ms (default 10 000). */
  readonly sessionTimeout?: number;
  readonly lockName: string;
  /**
   * Stop after this many sections, or at `until` (epoch ms), whichever comes first. Undefined for
   * the first workers of a run: the parent sends `{ type: 'go', until }` once all of them are
   * ready, so that a slow start (a loaded machine) does not eat into the run.
   */
  readonly sections: number;
  readonly until?: number;
  readonly expire: number;
  readonly autoExtend: boolean;
  readonly acquireTimeout: number;
  readonly operationTimeout: number;
  readonly holdMs: number;
  /** Skip the write when the lock's signal aborted (default). False: write anyway. */
  readonly checkSignal: boolean;
  /** Pause between sections (unlocked work), so others get their turn. */
  readonly workMs: number;
  readonly counterFile: string;
  readonly recordFile: string;
  /** Default 'lock'. */
  readonly primitive?: ChaosPrimitive;
  /** The semaphore's limit. */
  readonly limit?: number;
  /** Read-write: workers whose id is a multiple of this write (default 3). */
  readonly writeEvery?: number;
}

/** One line of a record file. */
export type WorkerRecord =
  | {
      readonly kind: 'section';
      readonly worker: number;
      readonly start: number;
      readonly end: number;
      readonly token: string | undefined;
      /** Whether it wrote the counter (its increment should be in the final count). */
      readonly wrote: boolean;
      /** The counter store refused its write: its fencing token was below the last writer's. */
      readonly fenced?: boolean;
      /** When its signal aborted (the lock known lost), if it did before the end. */
      readonly lostAt?: number;
      readonly released: boolean;
      /** What it held (absent: the lock). */
      readonly mode?: HeldMode;
    }
  | {
      /**
       * Written as soon as the lock is granted, before anything else (before the `acquired`
       * message): a section with a begin but no `section` record was cut (its process died).
       */
      readonly kind: 'begin';
      readonly worker: number;
      readonly start: number;
      readonly token: string | undefined;
      readonly mode?: HeldMode;
    }
  | {
      readonly kind: 'failure';
      readonly worker: number;
      readonly at: number;
      readonly error: 'timeout' | 'backend' | 'other';
      readonly message: string;
    }
  | { readonly kind: 'wait'; readonly worker: number; readonly ms: number };

/** The counter file's content. */
export interface Counter {
  readonly value: number;
  readonly token?: string;
}

interface Opened {
  readonly lock: BaseLock;
  close(): void;
  /** What each section holds. */
  readonly mode?: HeldMode;
}

/** The lock of `opened` replaced by a permit or a read-write side, per `settings.primitive`. */
function shared(settings: WorkerSettings, opened: Opened): Opened {
  const primitive = settings.primitive ?? 'lock';
  if (primitive === 'lock') return opened;
  const { lock } = opened;
  const manager = new LockManager({ backend: lock.backend, client: lock.client });
  const options = {
    expire: settings.expire,
    autoExtend: settings.autoExtend,
    timeout: settings.acquireTimeout,
    operationTimeout: settings.operationTimeout,
    retryInterval: 50,
  };
  if (primitive === 'semaphore') {
    return {
      lock: manager.semaphore(settings.lockName, settings.limit ?? 2, options),
      close: opened.close,
      mode: 'permit',
    };
  }
  const mode = settings.id % (settings.writeEvery ?? 3) === 0 ? 'write' : 'read';
  return { lock: manager.readWrite(settings.lockName, options)[mode], close: opened.close, mode };
}

function open(settings: WorkerSettings): Opened {
  return shared(settings, openLock(settings));
}

function openLock(settings: WorkerSettings): Opened {
  const options = {
    expire: settings.expire,
    autoExtend: settings.autoExtend,
    timeout: settings.acquireTimeout,
    operationTimeout: settings.operationTimeout,
    retryInterval: 50,
  };
  const quiet = (redis: Redis) => {
    redis.on('error', () => undefined);
    return redis;
  };
  switch (settings.backend) {
    case 'redis': {
      // A redis+sentinel:// URL (docs/sentinel.md) goes through the backend's own parser.
      const client = quiet(
        settings.address.startsWith('redis+sentinel://')
          ? (backends.get('redis').connect(settings.address) as Redis)
          : new Redis(settings.address, { maxRetriesPerRequest: 1 }),
      );
      return {
        lock: new RedisLock(settings.lockName, { client, ...options }),
        close: () => client.disconnect(),
      };
    }
    case 'etcd': {
      const client = new Etcd3({ hosts: settings.address.split(',') });
      return {
        lock: new EtcdLock(settings.lockName, { client, ...options }),
        close: () => client.close(),
      };
    }
    case 'memcached': {
      const client = memjs.Client.create(settings.address, {
        logger: { log: () => undefined },
        retries: 1,
        timeout: 1,
      });
      return {
        lock: new MemcachedLock(settings.lockName, { client, ...options }),
        close: () => client.close(),
      };
    }
    case 'redlock': {
      const clients = settings.address
        .split(',')
        .map((url) => quiet(new Redis(url, { maxRetriesPerRequest: 1 })));
      return {
        lock: new RedlockLock(settings.lockName, { client: new RedisQuorum(clients), ...options }),
        close: () => clients.forEach((client) => client.disconnect()),
      };
    }
    case 'postgres': {
      const client = new pg.Pool({ connectionString: settings.address, max: 4 });
      client.on('error', () => undefined); // a restart drops idle connections: queries report it
      return {
        lock: new PostgresLock(settings.lockName, { client, ...options }),
        close: () => void client.end().catch(() => undefined),
      };
    }
    case 'zookeeper': {
      const client = new ZooKeeperClient(settings.address, {
        sessionTimeout: settings.sessionTimeout ?? 10_000,
      });
      return {
        lock: new ZooKeeperLock(settings.lockName, { client, ...options }),
        close: () => client.close(),
      };
    }
  }
}

async function main(): Promise<void> {
  const settings = JSON.parse(process.env['CHAOS_WORKER'] ?? '') as WorkerSettings;
  const record = (line: WorkerRecord) =>
    appendFileSync(settings.recordFile, `${JSON.stringify(line)}\n`);
  const { lock, close, mode } = open(settings);
  // Permits and readers hold together: only a lock's holder or a writer writes the counter.
  const writes = mode === undefined || mode === 'write';
  let stopping = false;
  let until = settings.until;
  let go = (): void => undefined;
  const started = new Promise<void>((resolve) => (go = resolve));
  process.on('message', (message: { type?: string; until?: number }) => {
    if (message.type === 'stop') {
      stopping = true;
      go();
    }
    if (message.type === 'go') {
      until = message.until;
      go();
    }
  });
  process.send?.({ type: 'ready' });
  if (until === undefined) await started;
  let done = 0;
  while (!stopping && done < settings.sections && Date.now() < (until ?? 0)) {
    const asked = crossProcessNow();
    try {
      await lock.acquire({ timeout: settings.acquireTimeout });
    } catch (err) {
      const error =
        err instanceof LockTimeoutError
          ? 'timeout'
          : err instanceof LockBackendError
            ? 'backend'
            : 'other';
      record({
        kind: 'failure',
        worker: settings.id,
        at: crossProcessNow(),
        error,
        message: String(err),
      });
      await sleep(100);
      continue;
    }
    const start = crossProcessNow();
    record({ kind: 'wait', worker: settings.id, ms: start - asked });
    const token = lock.fencingToken;
    // On disk before the parent can learn of the grant (and kill this process for it).
    record({ kind: 'begin', worker: settings.id, start, token, ...(mode ? { mode } : {}) });
    let lostAt: number | undefined;
    lock.signal.addEventListener('abort', () => (lostAt ??= crossProcessNow()), { once: true });
    process.send?.({ type: 'acquired', token, at: start, asked });
    let wrote = false;
    let fenced = false;
    // The protected store: a counter that remembers the highest fencing token that wrote it and
    // refuses a write carrying a lower one (Kleppmann's fencing).
    const stored = JSON.parse(readFileSync(settings.counterFile, 'utf8')) as Counter;
    await sleep(settings.holdMs);
    if (writes && (!settings.checkSignal || !lock.signal.aborted)) {
      const now = JSON.parse(readFileSync(settings.counterFile, 'utf8')) as Counter;
      if (token !== undefined && now.token !== undefined && BigInt(token) < BigInt(now.token)) {
        fenced = true;
      } else {
        const next: Counter = { value: stored.value + 1, ...(token ? { token } : {}) };
        // Atomic replace: a reader never sees a half-written file.
        const temp = `${settings.counterFile}.${settings.id}`;
        writeFileSync(temp, JSON.stringify(next));
        renameSync(temp, settings.counterFile);
        wrote = true;
      }
    }
    const end = crossProcessNow();
    let released = true;
    try {
      await lock.release();
    } catch {
      released = false;
    }
    record({
      kind: 'section',
      worker: settings.id,
      start,
      end,
      token,
      wrote,
      ...(fenced ? { fenced } : {}),
      released,
      ...(lostAt === undefined ? {} : { lostAt }),
      ...(mode ? { mode } : {}),
    });
    done++;
    process.send?.({ type: 'section' });
    await sleep(settings.workMs);
  }
  close();
  process.send?.({ type: 'done', sections: done });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
