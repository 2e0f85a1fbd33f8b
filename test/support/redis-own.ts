/**
 * A Redis server of a file's own (`redisOfItsOwn`: started before its tests, stopped after them),
 * for tests whose numbers must be theirs alone (command counts, a line nobody else touches, a
 * server they pause or whose connections they kill), and what each test makes on it (`setUp`):
 * fresh ioredis clients and managers, closed when the test finishes (by `scope`, locks.ts), an
 * inspecting client, and readers of a line of waiters. `redisClients` makes the same on any
 * server (the shared one: `redisUrl()`).
 */
import { Redis } from 'ioredis';
import { LockManager, type LockManagerOptions } from 'nestjs-sherlock';
import { afterAll, beforeAll, type TestContext } from 'vitest';

import { waitFor } from './helpers.js';
import { scope } from './locks.js';
import { type RedisOptions, type RedisServer, startRedis } from './servers.js';

/** A manager's options in `setUp`: its backend is Redis, its client a fresh one unless given. */
export type ManagerOptions = Omit<LockManagerOptions, 'backend' | 'connection'>;

/**
 * Where a line of waiters is and how its entries read: its key (or a KEYS pattern, with `*`)
 * from what the test finds it by, and the entry's space-separated fields, in order.
 */
export interface LineShape<F extends string> {
  key(of: string): string;
  readonly fields: readonly F[];
}

const LOCK_FIELDS = ['mode', 'channel', 'id', 'token', 'expire'] as const;

/** A lock's line, found by its `queueKey`: `<mode> <channel> <id> <token> <expire>`. */
export const LOCK_LINE: LineShape<(typeof LOCK_FIELDS)[number]> = {
  key: (queueKey) => queueKey,
  fields: LOCK_FIELDS,
};

/** A semaphore's line, found by its name: `<mode> <channel> <id> <token> <expire> <limit>`. */
export const SEMAPHORE_LINE: LineShape<(typeof LOCK_FIELDS)[number] | 'limit'> = {
  key: (name) => `*semq:*${name}`,
  fields: [...LOCK_FIELDS, 'limit'],
};

/** A read-write lock's line, found by its name: `<side> <mode> <channel> <id> <token> <expire>`. */
export const READ_WRITE_LINE: LineShape<'side' | (typeof LOCK_FIELDS)[number]> = {
  key: (name) => `*rwq:*${name}`,
  fields: ['side', ...LOCK_FIELDS],
};

/** One entry of a line: its key, the raw member, and its fields (undefined when missing). */
export type LineEntry<F extends string> = { key: string; raw: string } & Record<
  F,
  string | undefined
>;

/** The first key that matches `pattern` (a semaphore's or read-write lock's keys, by name). */
export async function findKey(client: Redis, pattern: string): Promise<string | undefined> {
  return (await client.keys(pattern))[0];
}

/** Readers of a line of waiters, each given what the line's shape finds it by. */
export interface LineReader<F extends string> {
  /** The line's entries, first first ([] when there is no line). */
  line(of: string): Promise<LineEntry<F>[]>;
  /** How many wait in the line (0 when there is no line). */
  inLine(of: string): Promise<number>;
  /** Waits until `count` wait in the line (`what`: for the timeout's message). */
  queued(of: string, count: number, what?: string): Promise<void>;
}

/** Reads a line of waiters of shape `shape` through `client`. */
export function lineReader<F extends string>(client: Redis, shape: LineShape<F>): LineReader<F> {
  const keyOf = async (of: string) => {
    const key = shape.key(of);
    return key.includes('*') ? findKey(client, key) : key;
  };
  const line = async (of: string): Promise<LineEntry<F>[]> => {
    const key = await keyOf(of);
    if (key === undefined) return [];
    return (await client.zrange(key, '0', '-1')).map((raw) => {
      const values = raw.split(' ');
      const entry = { key, raw } as LineEntry<F>;
      shape.fields.forEach((field, i) => {
        (entry as Record<F, string | undefined>)[field] = values[i];
      });
      return entry;
    });
  };
  const inLine = async (of: string): Promise<number> => {
    const key = await keyOf(of);
    return key === undefined ? 0 : client.zcard(key);
  };
  const queued = async (of: string, count: number, what = `${count} in line`) => {
    await waitFor(async () => (await inLine(of)) === count, { what });
  };
  return { line, inLine, queued };
}

/** What one test makes on a Redis server: closed when it finishes (passed or failed). */
export interface RedisClients<F extends string> extends LineReader<F> {
  /** A fresh client, disconnected after the test. */
  client(): Redis;
  /** A client of its own for looking at the server (made first). */
  readonly inspector: Redis;
  /**
   * A manager on a fresh client (or on `options.client`), closed after the test: `setUp`'s
   * manager options, then `options`.
   */
  manager(options?: ManagerOptions): LockManager;
  /** Runs `cleanup` after the test, before the clients made earlier are closed. */
  defer(cleanup: () => unknown): void;
}

/**
 * Clients and managers on the server at `url`, for the test whose `onTestFinished` is given; the
 * line readers read `line` (default: a lock's, by its queue key) through the inspector.
 */
export function redisClients<F extends string = (typeof LOCK_FIELDS)[number]>(
  url: string,
  onTestFinished: TestContext['onTestFinished'],
  managerOptions: ManagerOptions = {},
  line: LineShape<F> = LOCK_LINE as unknown as LineShape<F>,
): RedisClients<F> {
  const { defer } = scope(onTestFinished);
  const client = () => {
    const made = new Redis(url);
    defer(() => made.disconnect());
    return made;
  };
  const inspector = client();
  const manager = (options: ManagerOptions = {}) => {
    const all = { ...managerOptions, ...options };
    const made = new LockManager({ ...all, backend: 'redis', client: all.client ?? client() });
    defer(() => made.close());
    return made;
  };
  return { client, inspector, manager, defer, ...lineReader(inspector, line) };
}

/** A Redis server of this file's own, and what each of its tests makes on it. */
export interface OwnRedis {
  /** The server (once the file's `beforeAll` ran). */
  readonly server: RedisServer;
  /** Its URL. */
  readonly url: string;
  /** `redisClients` on this server. */
  setUp<F extends string = (typeof LOCK_FIELDS)[number]>(
    onTestFinished: TestContext['onTestFinished'],
    managerOptions?: ManagerOptions,
    line?: LineShape<F>,
  ): RedisClients<F>;
}

/**
 * Starts a Redis server of its own before the tests of the enclosing `describe` (or file) and
 * stops it after them. Call it at the top of that `describe`.
 */
export function redisOfItsOwn(options: RedisOptions = {}): OwnRedis {
  let started: RedisServer | undefined;
  beforeAll(async () => {
    started = await startRedis(options);
  });
  afterAll(async () => {
    await started?.stop();
  });
  const own: OwnRedis = {
    get server() {
      if (started === undefined) throw new Error('the Redis server of its own is not started yet');
      return started;
    },
    get url() {
      return own.server.url;
    },
    setUp: (onTestFinished, managerOptions, line) =>
      redisClients(own.url, onTestFinished, managerOptions, line),
  };
  return own;
}
