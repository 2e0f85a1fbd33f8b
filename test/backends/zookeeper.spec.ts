/**
 * The zookeeper backend beyond the contract (which test/conformance runs on it through the kit):
 * the faults that apply to it, on a ZooKeeper of this file's own (killed and restarted here), and
 * the claims of docs/zookeeper.md: a holder SIGKILLed keeps its lock until ZooKeeper expires its
 * session, then the next waiter in line gets it (woken by the watch, with a higher czxid); a
 * server restart keeps sessions, so held locks and places in line survive it, while the
 * primitives fail cleanly meanwhile; a session that expires loses its locks (the loss signal
 * aborts through the failed renewal), and the client goes on with a new session; the typed
 * errors of a bad connection and of the recipes it lacks.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import {
  LockBackendError,
  LockManager,
  UnsupportedFeatureError,
  ZooKeeperClient,
  ZooKeeperLock,
} from 'nestjs-sherlock';
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
import { TcpProxy } from '../chaos/proxy.js';
import { startZooKeeper, type ZooKeeperServer } from '../support/servers.js';

const ROOT = join(import.meta.dirname, '..', '..');

let server: ZooKeeperServer;
const clients: ZooKeeperClient[] = [];

/** A session with this file's server (closed after the file). */
function client(sessionTimeout = 4_000): ZooKeeperClient {
  const made = new ZooKeeperClient(server.servers, { sessionTimeout });
  clients.push(made);
  return made;
}

beforeAll(async () => {
  server = await startZooKeeper();
}, 60_000);

afterAll(async () => {
  for (const each of clients) each.close();
  await server?.stop();
});

describe('zookeeper backend: faults', () => {
  it('a holder SIGKILLed while holding: the lock stays taken until its session expires, then the waiter in line gets it with a higher token', async () => {
    const name = uniqueName('sigkill');
    const SESSION = 2_000;
    const script = `
      import { ZooKeeperClient, ZooKeeperLock } from 'nestjs-sherlock';
      const client = new ZooKeeperClient(process.env.ZK, { sessionTimeout: ${SESSION} });
      const lock = new ZooKeeperLock(process.env.NAME, { client, expire: null });
      if (!(await lock.acquire(false))) process.exit(3);
      console.log('HELD ' + lock.fencingToken);
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      env: { ...process.env, ZK: server.servers, NAME: name },
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

    const rival = new ZooKeeperLock(name, { client: client(), timeout: SESSION + SLACK_MS });
    expect(await rival.acquire(false), 'taken right after the kill').toBe(false);
    const { value } = await timed(() => rival.acquire());
    expect(value).toBe(true);
    // Not before the session's expiry (the kill came after the grant: at least part of it).
    expect(performance.now() - killedAt).toBeGreaterThan(SESSION / 3);
    expectStrictlyIncreasing([heldToken, rival.fencingToken]);
    await rival.release();
  });

  it('ZooKeeper restarted: primitives fail with LockBackendError and ping() is down meanwhile; the session survives, so a held lock is still held after, and a waiter gets it on release', async () => {
    const name = uniqueName('restart');
    const holder = new ZooKeeperLock(name, { client: client(10_000), expire: null });
    expect(await holder.acquire(false)).toBe(true);
    const token = holder.fencingToken;
    await server.kill('SIGKILL');
    const down = new ZooKeeperLock(name, { client: client(), operationTimeout: 1_000 });
    const { error } = await rejectsWith(LockBackendError, () => down.acquire(false));
    expect(error.operation).toBe('acquire');
    expect(down.isAcquired).toBe(false);
    const health = new LockManager({ backend: 'zookeeper', client: client() });
    expect((await health.ping(1_000)).up).toBe(false);

    await server.start();
    await waitFor(async () => (await health.ping(2_000)).up, {
      timeout: 20_000,
      what: 'the health to be up again after the restart',
    });
    const other = new ZooKeeperLock(name, { client: client() });
    expect(await other.acquire(false), 'still held after the restart').toBe(false);

    const after = new ZooKeeperLock(name, { client: client(), timeout: 30_000 });
    const waiting = after.acquire();
    await delay(500); // in line, watching the holder's node
    await holder.release(); // the same session, reconnected
    expect(await waiting).toBe(true);
    expectStrictlyIncreasing([token, after.fencingToken]);
    await after.release();
    await health.close();
  });

  it('a session that expires loses its locks: the renewal fails and the signal aborts, a rival takes the lock, and the client goes on with a new session', async () => {
    const name = uniqueName('expired');
    // The holder reaches the server through a proxy the test cuts like a network partition, for
    // longer than its 2 s session: the server expires the session and deletes its nodes. (A second
    // connection to the same session, closed at once, races the first client's reconnection to
    // the session: it did not always expire it.)
    const proxy = await TcpProxy.start(server.port);
    try {
      const zk = new ZooKeeperClient(proxy.address, { sessionTimeout: 2_000 });
      clients.push(zk);
      const holder = new ZooKeeperLock(name, { client: zk, expire: 3_000, autoExtend: true });
      expect(await holder.acquire(false)).toBe(true);
      expect(zk.sessions).toBe(1);

      proxy.cut();
      const rival = new ZooKeeperLock(name, { client: client(), timeout: 30_000 });
      expect(await rival.acquire(), 'the expired session held nothing').toBe(true);
      await waitFor(async () => holder.signal.aborted, {
        timeout: 20_000,
        what: 'the loss signal of the expired holding',
      });
      await rival.release();
      proxy.heal();

      // The same client works again, on a new session.
      await waitFor(async () => zk.sessions === 2 && zk.connected, {
        timeout: 30_000,
        what: 'a new session',
      });
      const again = new ZooKeeperLock(name, { client: zk });
      expect(await again.acquire(false)).toBe(true);
      await again.release();
    } finally {
      await proxy.close();
    }
  });
});

describe('zookeeper backend: options', () => {
  it('refuses a semaphore with an UnsupportedFeatureError saying why, and a bad connection with a TypeError naming it', async () => {
    const manager = new LockManager({ backend: 'zookeeper', client: client() });
    const semaphore = (() => {
      try {
        manager.semaphore('s', 2);
      } catch (error) {
        return error;
      }
    })();
    expect(semaphore).toBeInstanceOf(UnsupportedFeatureError);
    expect(String(semaphore)).toMatch(/Curator's mutex recipe only/);
    await manager.close();

    expect(() => new LockManager({ backend: 'zookeeper', connection: { servers: '' } })).toThrow(
      /connection\.servers/,
    );
    expect(
      () =>
        new LockManager({
          backend: 'zookeeper',
          connection: { servers: server.servers, sessionTimeout: -1 },
        }),
    ).toThrow(/connection\.sessionTimeout.*-1/);
    expect(
      () => new LockManager({ backend: 'zookeeper', connection: { servers: 'h:1', bogus: 1 } }),
    ).toThrow(TypeError);
  });
});

describe('zookeeper backend: round trips', () => {
  /** Counts the driver calls made on a client's raw node-zookeeper-client (the real one). */
  function countCalls(zk: ZooKeeperClient): Map<string, number> {
    const counts = new Map<string, number>();
    const raw = zk.raw as Record<string, unknown>;
    for (const method of ['create', 'transaction', 'getChildren', 'exists', 'getData', 'setData']) {
      const original = raw[method] as (...args: unknown[]) => unknown;
      raw[method] = (...args: unknown[]) => {
        counts.set(method, (counts.get(method) ?? 0) + 1);
        return original.apply(raw, args);
      };
    }
    return counts;
  }
  interface Stat {
    czxid: Buffer;
    mtime: Buffer;
  }
  const statOf = (zk: ZooKeeperClient, path: string) =>
    new Promise<Stat>((resolve, reject) =>
      (zk.raw as { exists(p: string, cb: (e: unknown, s: Stat) => void): void }).exists(
        path,
        (error, stat) => (error ? reject(error) : resolve(stat)),
      ),
    );

  it('an uncontended acquire is one request (the create in a transaction with a write to the lock node): its token and deadline are its node czxid and mtime; with another node in line it reads the line', async () => {
    const zk = client();
    const name = uniqueName('one-trip');
    const lock = new ZooKeeperLock(name, { client: zk, expire: 30_000, timeout: 5_000 });
    expect(await lock.acquire(false)).toBe(true); // the first one also makes the lock node
    await lock.release();

    const counts = countCalls(zk);
    for (const blocking of [false, true]) {
      counts.clear();
      expect(await (blocking ? lock.acquire() : lock.acquire(false))).toBe(true);
      expect(Object.fromEntries(counts), blocking ? 'blocking' : 'one-shot').toEqual({
        transaction: 1,
      });
      const held = lock.holding?.held as { path: string; mtime: number };
      const stat = await statOf(zk, held.path);
      expect(lock.fencingToken).toBe(stat.czxid.readBigInt64BE(0).toString());
      expect(held.mtime).toBe(Number(stat.mtime.readBigInt64BE(0)));
      await lock.release();
    }

    // Another contender's node in line: the create's answer says so, the line is read.
    const rival = new ZooKeeperLock(name, { client: client(), expire: 30_000 });
    expect(await rival.acquire(false)).toBe(true);
    counts.clear();
    expect(await lock.acquire(false)).toBe(false);
    expect(counts.get('getChildren')).toBeGreaterThan(0);
    await rival.release();
    expect(await lock.acquire(false)).toBe(true);
    await lock.release();
  });
  it('a lock node whose ACL forbids writing it (contenders may only create children): the acquire creates its node plainly and reads the line', async () => {
    const zk = client();
    const lock = new ZooKeeperLock(uniqueName('acl'), { client: zk, expire: 30_000 });
    const lib = createRequire(import.meta.url)('node-zookeeper-client') as {
      ACL: new (perms: number, id: object) => object;
      Id: new (scheme: string, id: string) => object;
      Permission: Record<'CREATE' | 'READ' | 'DELETE', number>;
    };
    const { CREATE, READ, DELETE } = lib.Permission;
    const acl = [new lib.ACL(CREATE | READ | DELETE, new lib.Id('world', 'anyone'))];
    const raw = zk.raw as {
      mkdirp(path: string, done: (error: unknown) => void): void;
      create(path: string, d: Buffer, a: object[], mode: number, done: (e: unknown) => void): void;
    };
    await new Promise<void>((resolve, reject) =>
      raw.mkdirp('/nestjs-sherlock', (error) => (error ? reject(error) : resolve())),
    );
    await new Promise<void>((resolve, reject) =>
      raw.create(`/nestjs-sherlock/${lock.key}`, Buffer.alloc(0), acl, 0, (error) =>
        error ? reject(error) : resolve(),
      ),
    );
    expect(await lock.acquire(false)).toBe(true);
    const rival = new ZooKeeperLock(lock.name, { client: client(), expire: 30_000 });
    expect(await rival.acquire(false)).toBe(false);
    await lock.release();
    expect(await rival.acquire(false)).toBe(true);
    expect(BigInt(rival.fencingToken ?? 0)).toBeGreaterThan(0n);
    await rival.release();
  });
});
