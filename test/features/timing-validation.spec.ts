/**
 * Expiries a backend cannot honour are refused where they are set: Memcached (whole seconds, and
 * above 30 days it reads an expiry as a date) and Etcd (whole-second leases) refuse less than
 * 1000 ms, at lock construction, through LockService, and in the module options at bootstrap,
 * where the autoExtend combinations that cannot work fail as well. (Python sherlock's two Redis
 * expiry bugs are covered by test/backends/server-state.spec.ts.)
 */
import { Test } from '@nestjs/testing';
import {
  configure,
  EtcdLock,
  getConfiguration,
  getLockServiceToken,
  Lock,
  LockService,
  MemcachedLock,
  MemoryLock,
  RedisLock,
  resetConfiguration,
  SherlockModule,
  type SherlockModuleOptions,
} from 'nestjs-sherlock';
import { afterEach, describe, expect, it } from 'vitest';

import { ETCDHTTP } from '../support/etcd-http.lock.js';
import { etcdHosts, memcachedServerList } from '../support/env.js';
import { rejectionOf, useApps } from '../nest/helpers.js';

const THIRTY_DAYS = 30 * 24 * 3600 * 1000;
/** Never connected: construction talks to no server. */
const offline = { client: undefined };

const apps = useApps();

describe('at lock construction', () => {
  afterEach(() => resetConfiguration());

  it('memcached: below 1000 ms and above 30 days are refused; 1000 ms, 30 days and null are fine', () => {
    for (const expire of [1, 500, 999, THIRTY_DAYS + 1, 31 * 24 * 3600 * 1000]) {
      expect(() => new MemcachedLock('x', { ...offline, expire }), String(expire)).toThrow(
        RangeError,
      );
    }
    expect(() => new MemcachedLock('x', { expire: 999 })).toThrow(
      /'expire': got 999.*at least 1000 ms on memcached/,
    );
    expect(() => new MemcachedLock('x', { expire: THIRTY_DAYS + 1 })).toThrow(
      /'expire'.*at most 2592000000 ms \(30 days\) on memcached/,
    );
    for (const expire of [1_000, 1_500, THIRTY_DAYS, null]) {
      expect(new MemcachedLock('x', { expire }).expire).toBe(expire);
    }
  });

  it('etcd: below 1000 ms is refused; 1000 ms and more (or null) are fine', () => {
    for (const expire of [1, 999]) {
      expect(() => new EtcdLock('x', { expire }), String(expire)).toThrow(RangeError);
    }
    expect(() => new EtcdLock('x', { expire: 999 })).toThrow(/'expire': got 999.*on etcd/);
    for (const expire of [1_000, THIRTY_DAYS + 1, null]) {
      expect(new EtcdLock('x', { expire }).expire).toBe(expire);
    }
  });

  it('redis and memory count milliseconds: 1 ms is fine', () => {
    expect(new RedisLock('x', { expire: 1 }).expire).toBe(1);
    expect(new MemoryLock('x', { expire: 1 }).expire).toBe(1);
  });

  it('configure() checks the expire against the configured backend, and on a refusal nothing changes', () => {
    expect(() => configure({ backend: 'memcached', expire: 500 })).toThrow(
      /'expire': got 500.*memcached/,
    );
    expect(() => configure({ backend: 'memcached', expire: THIRTY_DAYS + 1 })).toThrow(RangeError);
    expect(getConfiguration().backend).toBeNull();
    expect(getConfiguration().expire).toBe(60_000);

    // Without a backend the expire is generic (Redis and Memory count milliseconds)...
    configure({ expire: 500 });
    expect(new RedisLock('x').expire).toBe(500);
    // ...and a backend that cannot honour it is then refused, leaving the settings as they were.
    expect(() => configure({ backend: 'etcd' })).toThrow(/'expire': got 500.*etcd/);
    expect(getConfiguration().backend).toBeNull();
    configure({ backend: 'memcached', expire: 2_000 });
    expect(new MemcachedLock('x').expire).toBe(2_000);
    expect(() => new Lock('x')).not.toThrow();
    // A backend-specific lock of another backend is still checked on its own.
    configure({ backend: 'redis', expire: 500 });
    expect(() => new MemcachedLock('x')).toThrow(/'expire': got 500.*memcached/);
  });
});

describe('through LockService', () => {
  it('memcached and etcd registrations refuse a short expire in create() and run() (fn is not called)', async () => {
    const app = await apps.start({
      imports: [
        SherlockModule.forRoot({ backend: 'memcached', connection: memcachedServerList() }),
        SherlockModule.forRoot({ name: 'etcd', backend: 'etcd', connection: etcdHosts() }),
      ],
    });
    const memcached = app.get(LockService);
    const etcd = app.get<LockService>(getLockServiceToken('etcd'));
    for (const service of [memcached, etcd]) {
      expect(() => service.create('x', { expire: 500 }), service.backend).toThrow(RangeError);
      expect(service.create('x', { expire: 1_000 }).expire).toBe(1_000);
    }
    expect(() => memcached.create('x', { expire: THIRTY_DAYS + 1 })).toThrow(/30 days/);
    let called = false;
    for (const service of [memcached, etcd]) {
      const error = await rejectionOf(service.run('x', () => (called = true), { expire: 999 }));
      expect(error).toBeInstanceOf(RangeError);
      expect(error.message).toMatch(new RegExp(`'expire': got 999.*${service.backend}`));
    }
    expect(called).toBe(false);
  });
});

describe('in the module options, at bootstrap', () => {
  const compileWith = (options: Record<string, unknown>) =>
    Test.createTestingModule({
      imports: [SherlockModule.forRoot(options as SherlockModuleOptions)],
    }).compile();

  const refused: { what: string; options: () => Record<string, unknown>; message: RegExp }[] = [
    {
      what: 'memcached, expire 500',
      options: () => ({ backend: 'memcached', connection: memcachedServerList(), expire: 500 }),
      message: /'expire': got 500.*at least 1000 ms on memcached/,
    },
    {
      what: 'memcached, expire above 30 days',
      options: () => ({
        backend: 'memcached',
        connection: memcachedServerList(),
        expire: THIRTY_DAYS + 1,
      }),
      message: /'expire'.*30 days/,
    },
    {
      what: 'memcached, locked.expire 999',
      options: () => ({
        backend: 'memcached',
        connection: memcachedServerList(),
        locked: { expire: 999 },
      }),
      message: /'expire': got 999.*memcached/,
    },
    {
      what: 'etcd, expire 999',
      options: () => ({ backend: 'etcd', connection: etcdHosts(), expire: 999 }),
      message: /'expire': got 999.*etcd/,
    },
    {
      what: 'autoExtend with expire null',
      options: () => ({ backend: 'memory', expire: null, autoExtend: true }),
      message: /'autoExtend': got true/,
    },
    {
      what: 'autoExtend above expire / 2',
      options: () => ({ backend: 'memory', expire: 1_000, autoExtend: 600 }),
      message: /'autoExtend': got 600.*500 ms/,
    },
    {
      what: 'locked.autoExtend with locked.expire null',
      options: () => ({ backend: 'memory', locked: { autoExtend: true, expire: null } }),
      message: /'autoExtend'/,
    },
    {
      what: 'autoExtend on a backend without _extend (etcdhttp)',
      options: () => ({ backend: ETCDHTTP, autoExtend: true }),
      message: /'autoExtend'.*etcdhttp/,
    },
  ];

  it.each(refused)('$what: compile() rejects with a RangeError', async ({ options, message }) => {
    const error = await rejectionOf(compileWith(options()));
    expect(error).toBeInstanceOf(RangeError);
    expect(error.message).toMatch(message);
  });

  it('forRootAsync options are checked the same way', async () => {
    const compiling = Test.createTestingModule({
      imports: [
        SherlockModule.forRootAsync({
          useFactory: async () => ({ backend: 'etcd', connection: etcdHosts(), expire: 500 }),
        }),
      ],
    }).compile();
    const error = await rejectionOf(compiling);
    expect(error).toBeInstanceOf(RangeError);
    expect(error.message).toMatch(/'expire': got 500.*etcd/);
  });

  it('the limits themselves start (the control case)', async () => {
    const app = await apps.start({
      imports: [
        SherlockModule.forRoot({
          backend: 'memcached',
          connection: memcachedServerList(),
          expire: 1_000,
          locked: { expire: THIRTY_DAYS, autoExtend: true },
        }),
      ],
    });
    expect(app.get(LockService).create('x').expire).toBe(1_000);
  });
});
