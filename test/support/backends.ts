/**
 * THE table of backends the tests run against: every built-in backend, and two custom ones (a
 * sherlock-style `BaseLock` subclass and a `LockBackend` object). Each fixture carries its
 * registered definition, and what it can do is read from there (`definition.capabilities`), never
 * written again here: the capability-driven tests filter this table by what a backend declares
 * (`withCapability`), so every backend gets the tests of what it claims, and a refusal test for
 * what it does not. The rest is what only the tests know: how to reach the test servers
 * (test/setup/global-setup.ts), a client to a server that is down, and how to look at the server.
 */
import { Etcd3 } from 'etcd3';
import pg from 'pg';
import { Redis } from 'ioredis';
import memjs from 'memjs';
import {
  type BackendCapabilities,
  type BackendDefinition,
  type BaseLock,
  type BaseLockOptions,
  backends,
  ClusterLock,
  ClusterLockClient,
  type ConnectionSettings,
  EtcdLock,
  MemcachedLock,
  MemoryLock,
  MemoryStore,
  PostgresLock,
  RedisLock,
  RedisQuorum,
  RedlockLock,
  ThreadLock,
  ThreadLockTable,
  ZooKeeperClient,
  ZooKeeperLock,
} from 'nestjs-sherlock';

import { ETCDGATEWAY, EtcdGateway } from './etcd-http.backend.js';
import { ETCDHTTP, EtcdHttpClient, EtcdHttpLock } from './etcd-http.lock.js';
import {
  etcdHosts,
  memcachedServerList,
  memcachedServers,
  postgresUrl,
  redisUrl,
  redlockUrls,
  zookeeperServers,
} from './env.js';
import { serverViews, type ServerView } from './inspect.js';

// How long the server surely keeps a lock asked for `ttl` ms, as the backend declares it (what the
// loss signal counts on), and a lock name no other test uses: the contract kit's.
export { lifetime, uniqueName } from '../../dist/testing/helpers.js';

export type BackendName =
  | 'redis'
  | 'memcached'
  | 'etcd'
  | 'memory'
  | 'etcdhttp'
  | 'etcdgateway'
  | 'redlock'
  | 'threads'
  | 'cluster'
  | 'postgres'
  | 'zookeeper';

export type LockConstructor = new (name: string, options?: BaseLockOptions) => BaseLock;

/** What the table says of one backend. */
interface FixtureSpec {
  readonly name: BackendName;
  readonly definition: BackendDefinition;
  /** The backend's lock class (for a `LockBackend` object: the one its registration made). */
  readonly LockClass?: LockConstructor;
  /** What joins namespace and name in a lock's key. */
  readonly keySeparator: '_' | '/';
  /** The `connection` setting reaching the test server (none: the backend has no server). */
  connection?(): ConnectionSettings;
  /** A new client to the test server. */
  createClient(): object;
  /** Closes a client made by createClient() or deadClient(). */
  closeClient(client: object): Promise<void>;
  /** A client to a port where nothing listens (undefined: the backend has no server). */
  deadClient?(port: number): object;
  /** The server, looked at directly. */
  readonly server: ServerView;
}

export interface BackendFixture extends FixtureSpec {
  readonly LockClass: LockConstructor;
  /** What the backend declares: `definition.capabilities` itself. */
  readonly capabilities: BackendCapabilities;
  /**
   * A short `expire` that the backend honours as such, for expiry tests: 1 s where the server
   * counts milliseconds, 2 s where it counts whole seconds.
   */
  readonly shortExpire: number;
}

function fixtureOf(spec: FixtureSpec): BackendFixture {
  const { capabilities } = spec.definition;
  return {
    ...spec,
    LockClass: spec.LockClass ?? (spec.definition.lockClass as unknown as LockConstructor),
    capabilities,
    shortExpire: Math.max(1_000, 2 * capabilities.expiry.granularity),
  };
}

const quietLogger = { log: () => undefined };

/** A Redis client to a port where nothing listens (default options: it retries for ever). */
const deadRedis = (port: number) => {
  const redis = new Redis({ host: '127.0.0.1', port, lazyConnect: true });
  redis.on('error', () => undefined);
  return redis;
};

export const fixtures: readonly BackendFixture[] = [
  fixtureOf({
    name: 'redis',
    definition: backends.REDIS,
    LockClass: RedisLock,
    keySeparator: '_',
    connection: () => redisUrl(),
    createClient: () => new Redis(redisUrl()),
    closeClient: async (client) => {
      (client as Redis).disconnect();
    },
    deadClient: deadRedis,
    server: serverViews.redis,
  }),
  fixtureOf({
    name: 'memcached',
    definition: backends.MEMCACHED,
    LockClass: MemcachedLock,
    keySeparator: '_',
    connection: () => memcachedServerList(),
    createClient: () => memjs.Client.create(memcachedServers(), { logger: quietLogger }),
    closeClient: async (client) => (client as memjs.Client).close(),
    deadClient: (port) => memjs.Client.create(`127.0.0.1:${port}`, { logger: quietLogger }),
    server: serverViews.memcached,
  }),
  fixtureOf({
    name: 'etcd',
    definition: backends.ETCD,
    LockClass: EtcdLock,
    keySeparator: '/',
    connection: () => etcdHosts(),
    createClient: () => new Etcd3({ hosts: etcdHosts() }),
    closeClient: async (client) => (client as Etcd3).close(),
    deadClient: (port) => new Etcd3({ hosts: `http://127.0.0.1:${port}` }),
    server: serverViews.etcd,
  }),
  fixtureOf({
    name: 'memory',
    definition: backends.MEMORY,
    LockClass: MemoryLock,
    keySeparator: '_',
    createClient: () => new MemoryStore(),
    closeClient: async (client) => (client as MemoryStore).clear(),
    server: serverViews.memory,
  }),
  fixtureOf({
    name: 'etcdhttp',
    definition: ETCDHTTP,
    LockClass: EtcdHttpLock,
    keySeparator: '/',
    connection: () => etcdHosts()[0] ?? '',
    createClient: () => new EtcdHttpClient(etcdHosts()[0]),
    closeClient: async () => undefined,
    deadClient: (port) => new EtcdHttpClient(`http://127.0.0.1:${port}`),
    server: serverViews.etcdKey,
  }),
  fixtureOf({
    name: 'etcdgateway',
    definition: ETCDGATEWAY,
    keySeparator: '/',
    connection: () => etcdHosts()[0] ?? '',
    createClient: () => new EtcdGateway(etcdHosts()[0]),
    closeClient: async () => undefined,
    deadClient: (port) => new EtcdGateway(`http://127.0.0.1:${port}`),
    server: serverViews.etcdKey,
  }),
  fixtureOf({
    name: 'redlock',
    definition: backends.REDLOCK,
    LockClass: RedlockLock,
    keySeparator: '_',
    connection: () => redlockUrls(),
    createClient: () => new RedisQuorum(redlockUrls().map((url) => new Redis(url))),
    closeClient: async (client) => {
      for (const redis of (client as RedisQuorum).clients) (redis as Redis).disconnect();
    },
    // Every server of the quorum is down.
    deadClient: (port) => new RedisQuorum([0, 1, 2].map(() => deadRedis(port))),
    server: serverViews.redlock,
  }),
  fixtureOf({
    // A table in this thread: a SharedArrayBuffer used by one thread is still a valid table (the
    // worker-thread tests are in test/backends/local-backends.spec.ts). Not cross-process, so
    // the harness's "other client" is the same table, as with memory.
    name: 'threads',
    definition: backends.THREADS,
    LockClass: ThreadLock,
    keySeparator: '_',
    createClient: () => new ThreadLockTable({ slots: 4096 }),
    closeClient: async () => undefined,
    server: serverViews.threads,
  }),
  fixtureOf({
    // Clients of this process's hub: the test process plays the primary, and every client of it
    // shares its table, as every process served by it does (the forked children's tests are in
    // test/backends/local-backends.spec.ts).
    name: 'cluster',
    definition: backends.CLUSTER,
    LockClass: ClusterLock,
    keySeparator: '_',
    createClient: () => ClusterLockClient.local(),
    closeClient: async (client) => (client as ClusterLockClient).close(),
    server: serverViews.cluster,
  }),
  fixtureOf({
    // A table of leases on the test PostgreSQL (started by the global setup when the run may use
    // it); each client is a pool of its own.
    name: 'postgres',
    definition: backends.POSTGRES,
    LockClass: PostgresLock,
    keySeparator: '_',
    connection: () => postgresUrl(),
    createClient: () => pgPool({ connectionString: postgresUrl() }),
    closeClient: async (client) => (client as pg.Pool).end(),
    deadClient: (port) =>
      pgPool({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' }),
    server: serverViews.postgres,
  }),
  fixtureOf({
    // Curator's lock recipe on the test ZooKeeper (started by the global setup when the run may
    // use it); each client is a session of its own (4 s: the server allows 1 to 60 s).
    name: 'zookeeper',
    definition: backends.ZOOKEEPER,
    LockClass: ZooKeeperLock,
    keySeparator: '_',
    connection: () => zookeeperServers(),
    createClient: () => new ZooKeeperClient(zookeeperServers(), { sessionTimeout: 4_000 }),
    closeClient: async (client) => (client as ZooKeeperClient).close(),
    deadClient: (port) => new ZooKeeperClient(`127.0.0.1:${port}`, { sessionTimeout: 4_000 }),
    server: serverViews.zookeeper,
  }),
];

/** A pg pool (an idle connection's error, a server restarting, is no crash). */
function pgPool(options: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool(options);
  pool.on('error', () => undefined);
  return pool;
}

/** The fixture of `backend` (a name, or the fixture itself). */
export function fixture(backend: BackendName | BackendFixture): BackendFixture {
  if (typeof backend !== 'string') return backend;
  const found = fixtures.find((each) => each.name === backend);
  if (!found) throw new Error(`no backend fixture '${backend}'`);
  return found;
}

/** The fixtures whose declared capabilities pass `test`. */
export function withCapability(
  test: (capabilities: BackendCapabilities) => boolean,
): BackendFixture[] {
  return fixtures.filter((each) => test(each.capabilities));
}

/** Backends that declare fencing tokens, and those that do not. */
export const FENCING = withCapability((c) => c.fencing);
export const NO_FENCING = withCapability((c) => !c.fencing);
/** Backends that declare extend (so `extend()` and `autoExtend`), and those that do not. */
export const EXTENDING = withCapability((c) => c.extend);
export const NOT_EXTENDING = withCapability((c) => !c.extend);
/** Backends whose waiters are woken by the release, and those whose waiters poll. */
export const PUSH = withCapability((c) => c.handOff === 'push');
export const POLL = withCapability((c) => c.handOff === 'poll');
