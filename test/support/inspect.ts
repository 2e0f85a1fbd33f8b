/**
 * Raw access to what each test server really holds, never through the library: RESP over TCP for
 * Redis (and each server of the Redlock quorum), the text protocol over TCP for Memcached, an etcd3
 * client of its own for Etcd, the MemoryStore itself for memory. `ServerView` is the same look
 * for every backend (the lock's owner token, its TTL, deleting its key), so that a test of a
 * declared capability asserts the same server state on every backend that claims it.
 */
import { Etcd3, type IKeyValue } from 'etcd3';
import {
  ClusterLockHub,
  type MemoryStore,
  type ThreadLockTable,
  ZooKeeperClient,
} from 'nestjs-sherlock';
import { connect } from 'node:net';
import { expect } from 'vitest';

import pg from 'pg';

import {
  etcdHosts,
  memcachedServerList,
  postgresUrl,
  redisUrl,
  redlockUrls,
  zookeeperServers,
} from './env.js';
import { redisCommand, type RedisTarget, type RespValue, tcpExchange } from './servers.js';

/** What a view needs of a lock: its key on the server, and its client (the store for memory). */
export interface LockOnServer {
  readonly key: string;
  readonly client: object;
}

/** A backend's server, looked at directly. */
export interface ServerView {
  /** The owner token the server holds for the lock's key (undefined when nobody holds it). */
  value(lock: LockOnServer): Promise<string | undefined>;
  /**
   * The lock's remaining time to live on the server in ms (whole seconds where the server counts
   * them): null when nobody holds it, -1 when it never expires.
   */
  ttl(lock: LockOnServer): Promise<number | null>;
  /** Deletes the lock's key behind the library's back (what an expiry does); asserts it existed. */
  remove(lock: LockOnServer): Promise<void>;
}

function hostPort(address: string): { host: string; port: number } {
  const url = new URL(address.includes('://') ? address : `tcp://${address}`);
  return { host: url.hostname, port: Number(url.port) };
}

// -------------------------------------------------------------------------------------------------
// Redis

export function redisTarget(url = redisUrl()): RedisTarget {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
  };
}

/** One Redis command over a fresh raw RESP connection; an error reply throws. */
export async function redisRaw(
  args: readonly (string | number)[],
  target: RedisTarget = redisTarget(),
): Promise<RespValue> {
  const reply = await redisCommand(target, args);
  if (reply !== null && typeof reply === 'object' && 'error' in reply) {
    throw new Error(`redis ${args.join(' ')}: ${reply.error}`);
  }
  return reply;
}

/** A raw `MONITOR` connection: every command the Redis server runs, one line each, in order. */
export interface RedisMonitor {
  /** The lines seen so far (`+OK` excluded). */
  readonly lines: readonly string[];
  close(): void;
}

export async function redisMonitor(target: RedisTarget = redisTarget()): Promise<RedisMonitor> {
  const socket = connect({ host: target.host ?? '127.0.0.1', port: target.port });
  const lines: string[] = [];
  let pending = '';
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('utf8');
      const complete = pending.split('\r\n');
      pending = complete.pop() ?? '';
      for (const line of complete) {
        if (line === '+OK') resolve();
        else lines.push(line);
      }
    });
    const auth = target.password ? `AUTH ${target.password}\r\n` : '';
    socket.write(`${auth}MONITOR\r\n`);
  });
  socket.on('error', () => undefined);
  return { lines, close: () => socket.destroy() };
}

/** A lock's key on one Redis server: GET, PTTL (-2 read as gone) and DEL. */
function redisView(target: () => RedisTarget): ServerView {
  return {
    async value({ key }) {
      const value = await redisRaw(['GET', key], target());
      return typeof value === 'string' ? value : undefined;
    },
    async ttl({ key }) {
      const pttl = Number(await redisRaw(['PTTL', key], target()));
      return pttl === -2 ? null : pttl;
    },
    async remove({ key }) {
      expect(await redisRaw(['DEL', key], target())).toBe(1);
    },
  };
}

/**
 * A Redlock lock as its quorum sees it: the token a majority of the servers hold, and the TTL a
 * majority still guarantees (of the servers holding that token, the quorum-th longest).
 */
function redlockView(): ServerView {
  const servers = () => redlockUrls().map((url) => redisView(() => redisTarget(url)));
  const quorum = () => Math.floor(redlockUrls().length / 2) + 1;
  const majorityToken = async (lock: LockOnServer) => {
    const values = await Promise.all(servers().map((server) => server.value(lock)));
    return values.find(
      (value) => value !== undefined && values.filter((v) => v === value).length >= quorum(),
    );
  };
  return {
    value: majorityToken,
    async ttl(lock) {
      const token = await majorityToken(lock);
      if (token === undefined) return null;
      const ttls: number[] = [];
      for (const server of servers()) {
        if ((await server.value(lock)) !== token) continue;
        const ttl = await server.ttl(lock);
        if (ttl !== null) ttls.push(ttl === -1 ? Infinity : ttl);
      }
      ttls.sort((a, b) => b - a);
      const guaranteed = ttls[quorum() - 1];
      if (guaranteed === undefined) return null;
      return guaranteed === Infinity ? -1 : guaranteed;
    },
    async remove({ key }) {
      let deleted = 0;
      for (const url of redlockUrls()) {
        deleted += Number(await redisRaw(['DEL', key], redisTarget(url)));
      }
      expect(deleted, 'servers that held the key').toBeGreaterThanOrEqual(quorum());
    },
  };
}

// -------------------------------------------------------------------------------------------------
// Memcached

/**
 * Memcached text-protocol commands over a fresh connection, followed by the meta no-op `mn`;
 * returns everything answered before its `MN`.
 */
export async function memcachedText(...commands: string[]): Promise<string> {
  const [first] = memcachedServerList();
  if (!first) throw new Error('MEMCACHED_SERVERS is empty');
  const { host, port } = hostPort(first);
  const payload = [...commands, 'mn'].map((command) => `${command}\r\n`).join('');
  const answer = await tcpExchange(host, port, payload, (got) => got.endsWith('MN\r\n'));
  if (!answer.endsWith('MN\r\n')) throw new Error(`memcached: incomplete answer ${answer}`);
  return answer.slice(0, -'MN\r\n'.length);
}

const base64 = (key: string): string => Buffer.from(key, 'utf8').toString('base64');

/** `mg` of any key (sent base64-encoded, so keys with spaces work): value and TTL in seconds. */
export async function memcachedGet(key: string): Promise<{ value: string; ttl: number } | null> {
  const answer = await memcachedText(`mg ${base64(key)} b v t`);
  if (answer === 'EN\r\n') return null;
  const match = /^VA (\d+) t(-?\d+)\r\n/.exec(answer);
  if (!match) throw new Error(`memcached mg: unexpected answer ${JSON.stringify(answer)}`);
  const [header, length, ttl] = match;
  return {
    value: answer.slice(header.length, header.length + Number(length)),
    ttl: Number(ttl),
  };
}

/** `md` of any key; resolves whether it existed. */
export async function memcachedDelete(key: string): Promise<boolean> {
  return (await memcachedText(`md ${base64(key)} b`)) === 'HD\r\n';
}

const memcachedView: ServerView = {
  value: async ({ key }) => (await memcachedGet(key))?.value,
  async ttl({ key }) {
    const item = await memcachedGet(key);
    return item === null ? null : item.ttl < 0 ? -1 : item.ttl * 1000;
  },
  async remove({ key }) {
    expect(await memcachedDelete(key)).toBe(true);
  },
};

// -------------------------------------------------------------------------------------------------
// Etcd

let inspectorClient: Etcd3 | undefined;

/** An etcd client of the test file's own, only used to look at the server. */
export function etcdInspector(): Etcd3 {
  inspectorClient ??= new Etcd3({ hosts: etcdHosts() });
  return inspectorClient;
}

/** Closes the inspector (call it in the afterAll of a file that looks at etcd). */
export function closeEtcdInspector(): void {
  inspectorClient?.close();
  inspectorClient = undefined;
}

/**
 * The entry that holds the etcd lock `key` (the lock's key as `lock.key` gives it): of the entries
 * `key` + U+001F + token, the one with the smallest create revision. Undefined when none.
 */
export async function etcdHolder(key: string): Promise<IKeyValue | undefined> {
  const { kvs } = await etcdInspector()
    .getAll()
    .prefix(`${key}\u001f`)
    .sort('Create', 'Ascend')
    .limit(1)
    .exec();
  return kvs[0];
}

/** The lease of an entry: its id, remaining and granted TTL in seconds (null without lease). */
async function leaseOf(
  kv: IKeyValue | undefined,
): Promise<{ id: string; ttl: number; granted: number } | null> {
  if (!kv || kv.lease === '0') return null;
  const lease = await etcdInspector().leaseClient.leaseTimeToLive({ ID: kv.lease });
  return { id: kv.lease, ttl: Number(lease.TTL), granted: Number(lease.grantedTTL) };
}

/** The lease of the entry holding the built-in etcd lock `key` (null without). */
export async function etcdLease(
  key: string,
): Promise<{ id: string; ttl: number; granted: number } | null> {
  return leaseOf(await etcdHolder(key));
}

/** Reads an entry as a view: its value is the owner token, its lease the lock's TTL. */
function etcdEntryView(entry: (key: string) => Promise<IKeyValue | undefined>): ServerView {
  return {
    value: async ({ key }) => (await entry(key))?.value.toString(),
    async ttl({ key }) {
      const kv = await entry(key);
      if (!kv) return null;
      const lease = await leaseOf(kv);
      return lease === null ? -1 : lease.ttl * 1000;
    },
    async remove({ key }) {
      const kv = await entry(key);
      expect(kv, `an entry holding ${key}`).toBeDefined();
      const deleted = await etcdInspector()
        .delete()
        .key(kv?.key ?? '')
        .exec();
      expect(deleted.deleted).toBe('1');
    },
  };
}

/** The key itself, holding the owner token (the custom etcd backends). */
async function etcdKey(key: string): Promise<IKeyValue | undefined> {
  return (await etcdInspector().get(key).exec()).kvs[0];
}

// -------------------------------------------------------------------------------------------------
// Memory

const memoryView: ServerView = {
  value: async ({ key, client }) => (client as MemoryStore).get(key),
  async ttl({ key, client }) {
    const store = client as MemoryStore;
    return store.get(key) === undefined ? null : store.ttl(key);
  },
  async remove({ key, client }) {
    const store = client as MemoryStore;
    const token = store.get(key);
    expect(token).toBeDefined();
    expect(store.deleteIfOwner(key, token ?? '')).toBe(true);
  },
};

// -------------------------------------------------------------------------------------------------
// Threads and cluster

/** A ThreadLockTable: its slot's holding (the generation, stable across extends) and TTL. */
const threadsView: ServerView = {
  value: async ({ key, client }) => (client as ThreadLockTable).peek(key)?.holding,
  ttl: async ({ key, client }) => (client as ThreadLockTable).peek(key)?.ttl ?? null,
  async remove({ key, client }) {
    expect((client as ThreadLockTable).evict(key)).toBe(true);
  },
};

/** The table of this process's ClusterLockHub (the clients of the tests are local to it). */
const clusterView: ServerView = {
  ...memoryView,
  value: async ({ key }) => ClusterLockHub.ofProcess().store.get(key),
  async ttl({ key }) {
    const store = ClusterLockHub.ofProcess().store;
    return store.get(key) === undefined ? null : store.ttl(key);
  },
  async remove({ key }) {
    const store = ClusterLockHub.ofProcess().store;
    const token = store.get(key);
    expect(token).toBeDefined();
    expect(store.deleteIfOwner(key, token ?? '')).toBe(true);
  },
};

/** The view of each backend's server. */
// -------------------------------------------------------------------------------------------------
// PostgreSQL: the row of the lease table, read with a pool of the view's own.

let postgresInspector: pg.Pool | undefined;

function postgresRow(key: string) {
  postgresInspector ??= new pg.Pool({ connectionString: postgresUrl(), allowExitOnIdle: true });
  postgresInspector.on('error', () => undefined);
  return postgresInspector.query<{ token: string; ttl: string | null }>(
    `SELECT token, CASE WHEN expires_at IS NULL THEN -1
              ELSE floor(extract(epoch FROM expires_at - clock_timestamp()) * 1000) END AS ttl
       FROM sherlock_locks WHERE key = $1 AND (expires_at IS NULL OR expires_at > clock_timestamp())`,
    [key],
  );
}

const postgresView: ServerView = {
  async value(lock) {
    return (await postgresRow(lock.key)).rows[0]?.token;
  },
  async ttl(lock) {
    const row = (await postgresRow(lock.key)).rows[0];
    return row === undefined ? null : Number(row.ttl);
  },
  async remove(lock) {
    expect((await postgresRow(lock.key)).rows, `the row of ${lock.key}`).toHaveLength(1);
    await postgresInspector?.query('DELETE FROM sherlock_locks WHERE key = $1', [lock.key]);
  },
};

// -------------------------------------------------------------------------------------------------
// ZooKeeper: the first contender node under the lock's node, read with a session of the view's
// own (its data: the owner token `t`, the holding's expire `e` from the node's mtime).

let zookeeperInspector: ZooKeeperClient | undefined;

/** The calls of node-zookeeper-client's Client the view makes. */
interface RawZooKeeper {
  getChildren(path: string, done: (e: Error | null, children: string[]) => void): void;
  getData(
    path: string,
    done: (e: Error | null, data: Buffer, stat: { mtime: Buffer } | undefined) => void,
  ): void;
  remove(path: string, version: number, done: (e: Error | null) => void): void;
}

function zkCall<T>(run: (raw: RawZooKeeper, done: (e: Error | null, r: T) => void) => void) {
  zookeeperInspector ??= new ZooKeeperClient(zookeeperServers(), { sessionTimeout: 4_000 });
  const zk = zookeeperInspector;
  return zk
    .ready()
    .then(
      () =>
        new Promise<T>((resolve, reject) =>
          run(zk.raw as RawZooKeeper, (e, r) => (e ? reject(e) : resolve(r))),
        ),
    );
}

const zkLockPath = (key: string) =>
  `/nestjs-sherlock/${encodeURIComponent(key).replace(/\./gu, '%2E').replace(/\*/gu, '%2A')}`;

/** The live holder node of a lock: its path, owner token and ms left (-1: none); undefined: free. */
async function zookeeperHolder(key: string) {
  const parent = zkLockPath(key);
  const children = await zkCall<string[]>((raw, done) => raw.getChildren(parent, done)).catch(
    () => [] as string[],
  );
  const seq = (name: string) => Number(name.slice(name.lastIndexOf('-lock-') + 6));
  const first = children
    .filter((name) => name.startsWith('_c_'))
    .sort((a, b) => seq(a) - seq(b))[0];
  if (first === undefined) return undefined;
  const path = `${parent}/${first}`;
  const { data, mtime } = await zkCall<{ data: Buffer; mtime: Buffer }>((raw, done) =>
    raw.getData(path, (e, data, stat) => done(e, { data, mtime: stat?.mtime ?? Buffer.alloc(8) })),
  );
  const { t, e } = JSON.parse(Buffer.from(data).toString('utf8')) as {
    t: string;
    e: number | null;
  };
  if (e === null) return { path, token: t, ttl: -1 };
  // The test server runs on this machine: its clock is this one.
  const ttl = Number(Buffer.from(mtime).readBigInt64BE(0)) + e - Date.now();
  return ttl > 0 ? { path, token: t, ttl } : undefined;
}

const zookeeperView: ServerView = {
  value: async (lock) => (await zookeeperHolder(lock.key))?.token,
  ttl: async (lock) => (await zookeeperHolder(lock.key))?.ttl ?? null,
  async remove(lock) {
    const holder = await zookeeperHolder(lock.key);
    expect(holder, `the holder node of ${lock.key}`).toBeDefined();
    await zkCall<void>((raw, done) =>
      raw.remove(holder?.path ?? '', -1, (e) => done(e, undefined)),
    );
  },
};

export const serverViews = {
  redis: redisView(() => redisTarget()),
  redlock: redlockView(),
  memcached: memcachedView,
  /** The built-in etcd backend: the lock is held by the first entry `key` + U+001F + token. */
  etcd: etcdEntryView(etcdHolder),
  /** The custom etcd backends: the key holds the token. */
  etcdKey: etcdEntryView(etcdKey),
  memory: memoryView,
  threads: threadsView,
  cluster: clusterView,
  postgres: postgresView,
  zookeeper: zookeeperView,
} satisfies Record<string, ServerView>;
