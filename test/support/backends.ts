/**
 * The backends every conformance test runs against, with what each needs: how to make a client
 * to the test servers (test/setup/global-setup.ts), a client to a server that is down, and the
 * backend's expiry granularity.
 */
import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import memjs from 'memjs';
import {
  type BackendDefinition,
  type BaseLock,
  type BaseLockOptions,
  backends,
  EtcdLock,
  MemcachedLock,
  MemoryLock,
  MemoryStore,
  RedisLock,
  RedisQuorum,
  RedlockLock,
} from 'nestjs-sherlock';
import { ETCDHTTP, EtcdHttpClient, EtcdHttpLock } from './etcd-http.lock.js';
import { etcdHosts, memcachedServers, redisUrl, redlockUrls } from './env.js';

export type BackendName = 'redis' | 'memcached' | 'etcd' | 'memory' | 'etcdhttp' | 'redlock';

export interface BackendFixture {
  readonly name: BackendName;
  readonly definition: BackendDefinition;
  readonly LockClass: new (name: string, options?: BaseLockOptions) => BaseLock;
  /** Whether the lock is shared between processes (false only for memory). */
  readonly crossProcess: boolean;
  /** The server's expiry granularity in ms (memcached and etcd count whole seconds). */
  readonly granularity: number;
  /** A short `expire` that the backend honours as such, for expiry tests. */
  readonly shortExpire: number;
  /** A new client to the test server. */
  createClient(): object;
  /** Closes a client made by createClient() or deadClient(). */
  closeClient(client: object): Promise<void>;
  /** A client to a port where nothing listens (undefined: the backend has no server). */
  deadClient?(port: number): object;
}

const quietLogger = { log: () => undefined };

export const fixtures: readonly BackendFixture[] = [
  {
    name: 'redis',
    definition: backends.REDIS,
    LockClass: RedisLock,
    crossProcess: true,
    granularity: 1,
    shortExpire: 1_000,
    createClient: () => new Redis(redisUrl()),
    closeClient: async (client) => {
      (client as Redis).disconnect();
    },
    // Default ioredis options: it queues commands and retries the connection for ever.
    deadClient: (port) => new Redis({ host: '127.0.0.1', port, lazyConnect: true }),
  },
  {
    name: 'memcached',
    definition: backends.MEMCACHED,
    LockClass: MemcachedLock,
    crossProcess: true,
    granularity: 1_000,
    shortExpire: 2_000,
    createClient: () => memjs.Client.create(memcachedServers(), { logger: quietLogger }),
    closeClient: async (client) => (client as memjs.Client).close(),
    deadClient: (port) => memjs.Client.create(`127.0.0.1:${port}`, { logger: quietLogger }),
  },
  {
    name: 'etcd',
    definition: backends.ETCD,
    LockClass: EtcdLock,
    crossProcess: true,
    granularity: 1_000,
    shortExpire: 2_000,
    createClient: () => new Etcd3({ hosts: etcdHosts() }),
    closeClient: async (client) => (client as Etcd3).close(),
    deadClient: (port) => new Etcd3({ hosts: `http://127.0.0.1:${port}` }),
  },
  {
    name: 'memory',
    definition: backends.MEMORY,
    LockClass: MemoryLock,
    crossProcess: false,
    granularity: 1,
    shortExpire: 1_000,
    createClient: () => new MemoryStore(),
    closeClient: async (client) => (client as MemoryStore).clear(),
  },
  {
    name: 'etcdhttp',
    definition: ETCDHTTP,
    LockClass: EtcdHttpLock,
    crossProcess: true,
    granularity: 1_000,
    shortExpire: 2_000,
    createClient: () => new EtcdHttpClient(etcdHosts()[0]),
    closeClient: async () => undefined,
    deadClient: (port) => new EtcdHttpClient(`http://127.0.0.1:${port}`),
  },
  {
    name: 'redlock',
    definition: backends.REDLOCK,
    LockClass: RedlockLock,
    crossProcess: true,
    granularity: 1,
    shortExpire: 1_000,
    createClient: () => new RedisQuorum(redlockUrls().map((url) => new Redis(url))),
    closeClient: async (client) => {
      for (const redis of (client as RedisQuorum).clients) (redis as Redis).disconnect();
    },
    // Every server of the quorum is down.
    deadClient: (port) =>
      new RedisQuorum(
        [0, 1, 2].map(() => {
          const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
          redis.on('error', () => undefined);
          return redis;
        }),
      ),
  },
];

/** A lock name no other test uses. */
export function uniqueName(prefix = 'lock'): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
