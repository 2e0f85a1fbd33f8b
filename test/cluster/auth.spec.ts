/**
 * Auth settings pass through to the drivers: Redis with `requirepass`, and with a least-privilege
 * ACL user confined to the lock namespace; etcd with authentication enabled. A wrong password is a
 * LockBackendError within operationTimeout, never a grant and never a hang.
 */
import { Test } from '@nestjs/testing';
import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import {
  EtcdLock,
  LockBackendError,
  LockService,
  RedisLock,
  SherlockModule,
} from 'nestjs-sherlock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import {
  type EtcdServer,
  type RedisServer,
  redisCommand,
  startEtcd,
  startRedis,
} from '../support/servers.js';

/** The least a Redis ACL user needs to lock in namespace `ns` (see docs/auth-tls.md). */
const LOCKER_ACL = [
  'on',
  '>locker-pw',
  '~ns_*',
  '&sherlock:wake:*',
  '+evalsha',
  '+eval',
  '+exists',
  '+info',
  '+subscribe',
  '+unsubscribe',
  // what the scripts call
  '+set',
  '+get',
  '+del',
  '+pexpire',
  '+pttl',
  '+incr',
  '+incrby',
  '+time',
  '+zadd',
  '+zrem',
  '+zrange',
  '+zrank',
  '+zpopmin',
  '+publish',
];

describe('Redis auth', () => {
  let server: RedisServer;
  const clients: Redis[] = [];
  const connect = (url: string) => {
    const client = new Redis(url, { maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  };
  const userUrl = (user: string, password: string) =>
    `redis://${user}:${password}@127.0.0.1:${server.port}`;

  beforeAll(async () => {
    server = await startRedis({ password: 'admin-pw' });
    const admin = { host: '127.0.0.1', port: server.port, password: 'admin-pw' };
    await redisCommand(admin, ['ACL', 'SETUSER', 'locker', ...LOCKER_ACL]);
    // Allowed to lock, not to publish or subscribe.
    const noChannel = LOCKER_ACL.filter((rule) => !rule.startsWith('&') && rule !== '>locker-pw');
    await redisCommand(admin, ['ACL', 'SETUSER', 'nochannel', '>nochannel-pw', ...noChannel]);
  });
  const connectionsReceived = async () => {
    const info = await redisCommand(
      { host: '127.0.0.1', port: server.port, password: 'admin-pw' },
      ['INFO', 'stats'],
    );
    return Number(/total_connections_received:(\d+)/.exec(String(info))?.[1]);
  };
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await server?.stop();
  });

  it('requirepass: the password in the URL works; a wrong one is a LockBackendError, not a grant', async () => {
    const good = new RedisLock(uniqueName('auth'), { client: connect(server.url) });
    expect(await good.acquire(false)).toBe(true);
    await good.release();
    const badClient = connect(`redis://:wrong@127.0.0.1:${server.port}`);
    const bad = new RedisLock(uniqueName('auth'), { client: badClient, operationTimeout: 1_000 });
    const started = performance.now();
    const error = await bad.acquire(false).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(LockBackendError);
    expect(String((error as Error).cause)).toMatch(
      /WRONGPASS|NOAUTH|invalid|timed? ?out|deadline|no answer/i,
    );
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(bad.isAcquired).toBe(false);
    badClient.disconnect(); // it would keep reconnecting (and count in a later test)
  });

  it('a least-privilege ACL user confined to ~ns_*: everything works in namespace ns (acquire, extend, hand-off, release); a lock outside it is refused (NOPERM)', async () => {
    const client = connect(userUrl('locker', 'locker-pw'));
    const other = connect(userUrl('locker', 'locker-pw'));
    const name = uniqueName('acl');
    const holder = new RedisLock(name, { client, namespace: 'ns', expire: 10_000 });
    const waiter = new RedisLock(name, {
      client: other,
      namespace: 'ns',
      retryInterval: 5_000,
      timeout: 10_000,
    });
    expect(await holder.acquire(false)).toBe(true);
    await holder.extend();
    const acquired = waiter.acquire().then(() => performance.now());
    await new Promise((resolve) => setTimeout(resolve, 300));
    await holder.release();
    const releasedAt = performance.now();
    expect((await acquired) - releasedAt, 'woken by the release').toBeLessThan(1_500);
    expect(BigInt(waiter.fencingToken ?? -1)).toBeGreaterThan(BigInt(0));
    await waiter.release();

    const outside = new RedisLock(name, { client, operationTimeout: 1_000 });
    const error = await outside.acquire(false).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(LockBackendError);
    expect(String((error as Error).cause)).toMatch(/NOPERM/);
  });

  it('a holder not allowed to publish still releases cleanly (the script does not fail half-way); the queued waiter gets the lock by its poll', async () => {
    const name = uniqueName('nochannel');
    const holder = new RedisLock(name, {
      client: connect(userUrl('nochannel', 'nochannel-pw')),
      namespace: 'ns',
      expire: 10_000,
    });
    const waiter = new RedisLock(name, {
      client: connect(userUrl('locker', 'locker-pw')),
      namespace: 'ns',
      timeout: 15_000,
    });
    expect(await holder.acquire(false)).toBe(true);
    const acquired = waiter.acquire();
    const admin = { host: '127.0.0.1', port: server.port, password: 'admin-pw' };
    for (
      let i = 0;
      i < 100 && Number(await redisCommand(admin, ['ZCARD', holder.queueKey])) < 1;
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await holder.release(); // would reject (NOPERM) after deleting the key, before the fix
    expect(holder.isAcquired).toBe(false);
    expect(await acquired).toBe(true);
    await waiter.release();
  });

  it('the Nest module with a wrong password: its client stops reconnecting once the app is closed', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        SherlockModule.forRoot({
          backend: 'redis',
          connection: `redis://locker:wrong@127.0.0.1:${server.port}`,
        }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication();
    await app.init();
    await app
      .get(LockService)
      .tryAcquire(uniqueName('closed'))
      .catch(() => undefined);
    await app.close();
    const before = await connectionsReceived();
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    // One of them is ours (the INFO); ioredis would retry at least every 2 s.
    expect((await connectionsReceived()) - before).toBeLessThanOrEqual(1);
  });

  it('the Nest module passes a redis:// URL with user and password through', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        SherlockModule.forRoot({
          backend: 'redis',
          connection: userUrl('locker', 'locker-pw'),
          namespace: 'ns',
        }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication();
    await app.init();
    try {
      const locks = app.get(LockService);
      const result = await locks.run(uniqueName('nest-acl'), (lock) => lock.fencingToken);
      expect(result).toMatch(/^\d+$/);
    } finally {
      await app.close();
    }
  });
});

describe('etcd auth', () => {
  let server: EtcdServer;
  beforeAll(async () => {
    server = await startEtcd();
    const admin = new Etcd3({ hosts: server.url });
    try {
      await admin.role('root').create();
      await admin.user('root').create('root-pw');
      await admin.user('root').addRole('root');
      await admin.auth.authEnable();
    } finally {
      admin.close();
    }
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('with auth enabled: a client with the right credentials locks; a wrong password is a LockBackendError', async () => {
    const good = new Etcd3({ hosts: server.url, auth: { username: 'root', password: 'root-pw' } });
    const bad = new Etcd3({ hosts: server.url, auth: { username: 'root', password: 'wrong' } });
    const none = new Etcd3({ hosts: server.url });
    try {
      const name = uniqueName('etcd-auth');
      const lock = new EtcdLock(name, { client: good, expire: 5_000 });
      expect(await lock.acquire(false)).toBe(true);
      await lock.extend();
      expect(await lock.locked()).toBe(true);
      await lock.release();
      for (const client of [bad, none]) {
        const denied = new EtcdLock(name, { client, operationTimeout: 2_000 });
        const error = await denied.acquire(false).catch((err: unknown) => err);
        expect(error).toBeInstanceOf(LockBackendError);
        expect(denied.isAcquired).toBe(false);
      }
    } finally {
      good.close();
      bad.close();
      none.close();
    }
  });
});
