/**
 * The postgres backend beyond the contract (which test/conformance runs on it through the kit):
 * the faults that apply to it, on a PostgreSQL of this file's own (killed and restarted here),
 * and the claims of docs/postgres.md: a holder SIGKILLed keeps its lock until its expiry, a
 * restart keeps held locks (the table is durable) and fails the primitives cleanly meanwhile,
 * holding a lock holds no connection (a pool of one serves twenty held locks), the listening
 * connection comes back after a restart, the health round trip says down then up again, and the
 * table is made on first use.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  LockBackendError,
  LockManager,
  PostgresLock,
  UnsupportedFeatureError,
} from 'nestjs-sherlock';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import {
  delay,
  expectStrictlyIncreasing,
  rejectsWith,
  SLACK_MS,
  timed,
  waitFor,
} from '../support/helpers.js';
import { type PostgresServer, startPostgres } from '../support/servers.js';

const ROOT = join(import.meta.dirname, '..', '..');

let server: PostgresServer;
const pools: pg.Pool[] = [];

/** A pool to this file's server (ended after the file). */
function pool(options: pg.PoolConfig = {}): pg.Pool {
  const made = new pg.Pool({ connectionString: server.url, ...options });
  made.on('error', () => undefined);
  pools.push(made);
  return made;
}

beforeAll(async () => {
  server = await startPostgres();
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(pools.map((each) => each.end()));
  await server?.stop();
});

describe('postgres backend: the table, the pool, the listener', () => {
  it('creates its table and sequence on first use, once, even when many pools race for it', async () => {
    const before = await pool().query(`SELECT to_regclass('sherlock_locks') AS t`);
    expect(before.rows[0]?.t).toBeNull();
    const name = uniqueName('first-use');
    const results = await Promise.all(
      Array.from({ length: 6 }, () => new PostgresLock(name, { client: pool() }).acquire(false)),
    );
    expect(results.filter(Boolean)).toHaveLength(1);
    const after = await pool().query(
      `SELECT to_regclass('sherlock_locks') IS NOT NULL AS t, to_regclass('sherlock_locks_fence') IS NOT NULL AS s`,
    );
    expect(after.rows[0]).toEqual({ t: true, s: true });
  });

  it('holding a lock holds no connection: a pool of one serves twenty held locks and a blocked waiter', async () => {
    const one = pool({ max: 1 });
    const locks = new LockManager({ backend: 'postgres', client: one, expire: 30_000 });
    const names = Array.from({ length: 20 }, (_, i) => uniqueName(`pinned-${i}`));
    const held = names.map((name) => locks.lock(name));
    for (const lock of held) expect(await lock.acquire(false)).toBe(true);
    expect(one.totalCount).toBe(1);
    const waiter = locks.lock(names[0] ?? '', { timeout: 10_000 });
    const waiting = waiter.acquire();
    await delay(300);
    await held[0]?.release();
    expect(await waiting).toBe(true);
    expect(one.totalCount).toBe(1); // the listening connection is not the pool's
    await locks.close();
  });

  it('refuses a semaphore with an UnsupportedFeatureError saying why, and a bad connection with a TypeError', async () => {
    const locks = new LockManager({ backend: 'postgres', client: pool() });
    const error = (() => {
      try {
        locks.semaphore('s', 2);
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(UnsupportedFeatureError);
    expect((error as Error).message).toContain('a table of permits');
    expect(() => new LockManager({ backend: 'postgres', connection: [] as never })).toThrow(
      /Invalid option 'connection'.*postgres/,
    );
    await locks.close();
  });
});

describe('postgres backend: inspection', () => {
  it('list() escapes LIKE wildcards; an expired row is neither inspected, listed nor force-released; no expiry is ttl -1', async () => {
    const client = pool();
    const namespace = uniqueName('ins_p%');
    const locks = new LockManager({ backend: 'postgres', client, namespace, expire: 30_000 });
    // '_' and '%' in the prefix are literal: 'a_1' and '50%' match, 'ab1' and '50x' do not.
    const names = ['a_1', 'ab1', '50%', '50x', 'forever'];
    const held = names.map((name) => locks.lock(name, name === 'forever' ? { expire: null } : {}));
    for (const lock of held) expect(await lock.acquire(false)).toBe(true);
    // Another namespace whose name the unescaped pattern would match ('_' -> any character).
    const elsewhere = new LockManager({
      backend: 'postgres',
      client,
      namespace: namespace.replace('_', 'x'),
    });
    expect(await elsewhere.lock('a_2').acquire(false)).toBe(true);

    expect((await locks.list('a_')).map((l) => l.name)).toEqual(['a_1']);
    expect((await locks.list('50%')).map((l) => l.name)).toEqual(['50%']);
    expect((await locks.list()).map((l) => l.name)).toEqual([
      '50%',
      '50x',
      'a_1',
      'ab1',
      'forever',
    ]);
    expect(await locks.inspect('forever')).toMatchObject({ held: true, ttl: -1 });

    // Expired on the server's clock (the row is still there): free to every primitive.
    const expired = held[0]!;
    await client.query(
      `UPDATE sherlock_locks SET expires_at = clock_timestamp() - interval '1 second' WHERE key = $1`,
      [expired.key],
    );
    expect(await locks.inspect('a_1')).toMatchObject({ held: false, holder: null });
    expect((await locks.list('a')).map((l) => l.name)).toEqual(['ab1']);
    expect(await locks.forceRelease('a_1')).toBeNull();
    expect(
      (await client.query(`SELECT 1 FROM sherlock_locks WHERE key = $1`, [expired.key])).rowCount,
    ).toBe(1);

    for (const lock of held.slice(1)) await lock.release();
    await elsewhere.close();
    await locks.close();
  });
});

describe('postgres backend: faults', () => {
  it('a holder SIGKILLed while holding: the lock stays taken until its expiry, then the next holder gets a higher token', async () => {
    const name = uniqueName('sigkill');
    const EXPIRE = 3_000;
    const script = `
      import pg from 'pg';
      import { PostgresLock } from 'nestjs-sherlock';
      const client = new pg.Pool({ connectionString: process.env.PG });
      const lock = new PostgresLock(process.env.NAME, { client, expire: ${EXPIRE} });
      if (!(await lock.acquire(false))) process.exit(3);
      console.log('HELD ' + lock.fencingToken);
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      env: { ...process.env, PG: server.url, NAME: name },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const heldToken = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => {
        const match = /HELD (\d+)/.exec(chunk.toString());
        if (match?.[1]) resolve(match[1]);
      });
      child.once('exit', (code) => reject(new Error(`the holder exited with ${code}`)));
    });
    child.kill('SIGKILL');
    const killedAt = performance.now();

    const rival = new PostgresLock(name, { client: pool(), timeout: EXPIRE + SLACK_MS });
    expect(await rival.acquire(false), 'taken right after the kill').toBe(false);
    const { value } = await timed(() => rival.acquire());
    expect(value).toBe(true);
    // Not before its expiry (the kill came after the grant: at least what was left of it).
    expect(performance.now() - killedAt).toBeGreaterThan(EXPIRE / 3);
    expectStrictlyIncreasing([heldToken, rival.fencingToken]);
    await rival.release();
  });

  it('PostgreSQL restarted: primitives fail with LockBackendError and ping() is down meanwhile; a held lock is still held after; a waiter across the restart gets it on release', async () => {
    const name = uniqueName('restart');
    const holderPool = pool();
    const holder = new PostgresLock(name, { client: holderPool, expire: 60_000 });
    expect(await holder.acquire(false)).toBe(true);
    const token = holder.fencingToken;

    await server.kill('SIGKILL');
    const down = new PostgresLock(name, { client: pool(), operationTimeout: 1_000 });
    const { error } = await rejectsWith(LockBackendError, () => down.acquire(false));
    expect(error.operation).toBe('acquire');
    expect(down.isAcquired).toBe(false);
    // The health round trip (SELECT 1) says down, with the reason, and up again after the restart.
    const health = new LockManager({ backend: 'postgres', client: pool() });
    const unhealthy = await health.ping(2_000);
    expect(unhealthy.up).toBe(false);
    expect(!unhealthy.up && unhealthy.reason).toMatch(/ECONNREFUSED|no answer|terminat|connect/i);

    await server.start();
    await waitFor(async () => (await health.ping(2_000)).up, {
      timeout: 20_000,
      what: 'the health to be up again after the restart',
    });
    await health.close();
    const after = new PostgresLock(name, { client: pool(), timeout: 20_000 });
    expect(await after.acquire(false), 'still held after the restart').toBe(false);

    const waiting = after.acquire();
    await delay(500); // in line, listening on a new connection
    await holder.release(); // the holder's pool reconnects by itself
    expect(await waiting).toBe(true);
    expectStrictlyIncreasing([token, after.fencingToken]);
    await after.release();
  });
});
