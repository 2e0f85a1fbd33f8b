/**
 * Shared helpers of the feature tests (test/features/*.spec.ts): per-test scopes that release the
 * locks and close the clients a test made (the tests of a file run concurrently, so there is no
 * shared afterEach), raw access to what each server really holds (never through the library),
 * and timing helpers.
 */
import { Etcd3, type IKeyValue } from 'etcd3';
import {
  type BaseLock,
  type BaseLockOptions,
  LockLostError,
  type LockLostReason,
  LockReleaseError,
  type LockReleaseReason,
  MemoryStore,
} from 'nestjs-sherlock';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { TestContext } from 'vitest';
import { expect } from 'vitest';

import { type BackendFixture, type BackendName, fixtures } from '../support/backends.js';
import { etcdHosts, memcachedServerList, redisUrl } from '../support/env.js';
import { redisCommand, type RedisTarget, type RespValue, tcpExchange } from '../support/servers.js';

export { delay };

/** The fixture of `name` (test/support/backends.ts). */
export function fixture(name: BackendName): BackendFixture {
  const found = fixtures.find((each) => each.name === name);
  if (!found) throw new Error(`no backend fixture '${name}'`);
  return found;
}

/** The backends that issue fencing tokens and can extend a lock. */
export type TokenBackend = 'redis' | 'memcached' | 'etcd' | 'memory';
export const TOKEN_BACKENDS: readonly TokenBackend[] = ['redis', 'memcached', 'etcd', 'memory'];

/** Monotonic milliseconds. */
export const now = (): number => performance.now();

/** What a test made: released / closed when it finishes (passed or failed). */
export interface Scope {
  /**
   * A new client of the backend (closed after the test). For memory, the one store of this scope:
   * its "clients" are lock objects sharing a store, as processes share a server.
   */
  client(backend: BackendName): object;
  /** A lock on `client` (default: a new client), released after the test if still held. */
  lock(backend: BackendName, name: string, options?: BaseLockOptions, client?: object): BaseLock;
  /** Runs `cleanup` after the test, before the clients are closed. */
  defer(cleanup: () => unknown): void;
}

export function scope(onTestFinished: TestContext['onTestFinished']): Scope {
  const locks: BaseLock[] = [];
  const clients: { backend: BackendName; client: object }[] = [];
  const deferred: (() => unknown)[] = [];
  let store: MemoryStore | undefined;
  onTestFinished(async () => {
    await Promise.allSettled(locks.filter((l) => l.isAcquired).map((l) => l.release()));
    for (const cleanup of deferred.reverse()) await Promise.resolve().then(cleanup);
    await Promise.allSettled(
      clients.map(({ backend, client }) => fixture(backend).closeClient(client)),
    );
  });
  const made: Scope = {
    client(backend) {
      if (backend === 'memory') return (store ??= new MemoryStore());
      const client = fixture(backend).createClient();
      clients.push({ backend, client });
      return client;
    },
    lock(backend, name, options = {}, client = made.client(backend)) {
      const lock = new (fixture(backend).LockClass)(name, { ...options, client });
      locks.push(lock);
      return lock;
    },
    defer(cleanup) {
      deferred.push(cleanup);
    },
  };
  return made;
}

/** Asserts tokens are decimal strings, strictly increasing (compared as BigInt). */
export function expectStrictlyIncreasing(
  check: TestContext['expect'],
  tokens: readonly (string | undefined)[],
): void {
  for (const token of tokens) check(token).toMatch(/^(0|[1-9]\d*)$/);
  const values = tokens.map((token) => BigInt(token ?? -1));
  const drops = values.flatMap((value, i) => {
    const before = values[i - 1];
    return i > 0 && before !== undefined && value <= before ? [`#${i}: ${before} -> ${value}`] : [];
  });
  check(drops, 'tokens that did not increase').toEqual([]);
}

/** Resolves at the monotonic time `signal` aborts (at once if it already has). */
export function abortTime(signal: AbortSignal): Promise<number> {
  if (signal.aborted) return Promise.resolve(now());
  return new Promise((resolve) =>
    signal.addEventListener('abort', () => resolve(now()), { once: true }),
  );
}

/** Expects `signal` aborted with a LockLostError of one of `reasons`. */
export function expectLost(
  check: TestContext['expect'],
  signal: AbortSignal,
  reasons: readonly LockLostReason[],
): void {
  check(signal.aborted, 'signal aborted').toBe(true);
  check(signal.reason).toBeInstanceOf(LockLostError);
  check(reasons).toContain((signal.reason as LockLostError).reason);
}

/** The error `promise` rejects with (fails if it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('expected a rejection, but the promise resolved'),
    (err: unknown) => err,
  );
}

/** Expects `promise` to reject with a LockReleaseError of `reason`. */
export async function expectReleaseError(
  check: TestContext['expect'],
  promise: Promise<unknown>,
  reason: LockReleaseReason,
): Promise<void> {
  const error = await rejection(promise);
  check(error).toBeInstanceOf(LockReleaseError);
  check((error as LockReleaseError).reason).toBe(reason);
}

/** Polls `check` until it is true; fails after `timeout` ms. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  timeout = 10_000,
  interval = 25,
): Promise<void> {
  const deadline = now() + timeout;
  while (!(await check())) {
    if (now() > deadline) throw new Error(`${what} did not happen within ${timeout} ms`);
    await delay(interval);
  }
}

// -------------------------------------------------------------------------------------------------
// Raw server access

function hostPort(address: string): { host: string; port: number } {
  const url = new URL(address.includes('://') ? address : `tcp://${address}`);
  return { host: url.hostname, port: Number(url.port) };
}

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

let inspectorClient: Etcd3 | undefined;

/** An etcd client of the test file's own, only used to look at the server. */
export function etcdInspector(): Etcd3 {
  inspectorClient ??= new Etcd3({ hosts: etcdHosts() });
  return inspectorClient;
}

/** Closes the inspector (call it in the file's afterAll). */
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

/** The remaining time to live of the lease of the entry holding lock `key` (null without). */
export async function etcdLease(
  key: string,
): Promise<{ id: string; ttl: number; granted: number } | null> {
  const kv = await etcdHolder(key);
  if (!kv || kv.lease === '0') return null;
  const lease = await etcdInspector().leaseClient.leaseTimeToLive({ ID: kv.lease });
  return { id: kv.lease, ttl: Number(lease.TTL), granted: Number(lease.grantedTTL) };
}

/**
 * The lock's remaining time to live on the server, in ms (whole seconds on memcached and etcd);
 * null when the key is gone, -1 when it has no expiry. `client` is the memory store for memory.
 */
export async function serverTtl(
  backend: TokenBackend,
  key: string,
  client?: object,
): Promise<number | null> {
  switch (backend) {
    case 'redis': {
      const pttl = Number(await redisRaw(['PTTL', key]));
      return pttl === -2 ? null : pttl;
    }
    case 'memcached': {
      const item = await memcachedGet(key);
      return item === null ? null : item.ttl < 0 ? -1 : item.ttl * 1000;
    }
    case 'etcd': {
      if (!(await etcdHolder(key))) return null;
      const lease = await etcdLease(key);
      return lease === null ? -1 : lease.ttl * 1000;
    }
    case 'memory': {
      const store = client as MemoryStore;
      if (store.get(key) === undefined) return null;
      return store.ttl(key);
    }
  }
}

/** The owner token the server holds for `key` (undefined if none). */
export async function serverValue(
  backend: TokenBackend,
  key: string,
  client?: object,
): Promise<string | undefined> {
  switch (backend) {
    case 'redis': {
      const value = await redisRaw(['GET', key]);
      return typeof value === 'string' ? value : undefined;
    }
    case 'memcached':
      return (await memcachedGet(key))?.value;
    case 'etcd':
      return (await etcdHolder(key))?.value.toString();
    case 'memory':
      return (client as MemoryStore).get(key);
  }
}

/** Deletes the lock's key behind the library's back (what an expiry or eviction does). */
export async function deleteByHand(
  backend: TokenBackend,
  key: string,
  client?: object,
): Promise<void> {
  switch (backend) {
    case 'redis':
      expect(await redisRaw(['DEL', key])).toBe(1);
      return;
    case 'memcached':
      expect(await memcachedDelete(key)).toBe(true);
      return;
    case 'etcd': {
      const holder = await etcdHolder(key);
      expect(holder).toBeDefined();
      const deleted = await etcdInspector()
        .delete()
        .key(holder?.key ?? '')
        .exec();
      expect(deleted.deleted).toBe('1');
      return;
    }
    case 'memory': {
      const store = client as MemoryStore;
      const token = store.get(key);
      expect(token).toBeDefined();
      expect(store.deleteIfOwner(key, token ?? '')).toBe(true);
      return;
    }
  }
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
