/**
 * Every way of registering SherlockModule resolves a LockService that takes real locks on its
 * backend; the module closes the clients it created and leaves the user's clients open.
 */
import { Injectable, Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import {
  type BackendName,
  configure,
  DEFAULT_LOCK_OPTIONS,
  getLockServiceToken,
  InjectLockService,
  LockService,
  SherlockModule,
  type SherlockModuleOptions,
  type SherlockOptionsFactory,
  resetConfiguration,
} from 'nestjs-sherlock';
import { afterEach, describe, expect, it } from 'vitest';

import { etcdHosts, memcachedServerList, redisUrl } from '../support/env.js';
import {
  ALL_BACKENDS,
  backendOptions,
  clients,
  delay,
  lockClasses,
  type Probe,
  SERVER_BACKENDS,
  uniqueName,
  useApps,
  useProbe,
  waitFor,
} from './helpers.js';

const apps = useApps();

/** Takes `name` through `locks`, checks it on the server with `probe`, releases it. */
async function expectWorkingLocks(
  locks: LockService,
  probe: Probe,
  name: string,
  namespace?: string,
): Promise<void> {
  expect(await probe.isLocked(name, namespace)).toBe(false);
  const lock = await locks.acquire(name);
  expect(lock.isAcquired).toBe(true);
  expect(await probe.isLocked(name, namespace)).toBe(true);
  await lock.release();
  expect(await probe.isLocked(name, namespace)).toBe(false);
}

describe.each(ALL_BACKENDS)('forRoot() on %s', (backend) => {
  const probe = useProbe(backend);

  it('resolves a LockService whose locks are taken on the backend', async () => {
    const app = await apps.start({ imports: [SherlockModule.forRoot(backendOptions(backend))] });
    const locks = app.get(LockService);
    expect(locks.backend).toBe(backend);
    expect(locks.registration).toBe('default');
    await expectWorkingLocks(locks, probe, uniqueName(`forroot-${backend}`));
  });
});

describe.each(SERVER_BACKENDS)('client ownership on %s', (backend) => {
  const probe = useProbe(backend);
  const { create, close, state } = clients[backend];

  it('forRoot({ client }) uses the client and leaves it open after app.close()', async () => {
    const client = create();
    try {
      // No `backend`: the module finds it from the client's class.
      const app = await apps.start({ imports: [SherlockModule.forRoot({ client })] });
      const locks = app.get(LockService);
      expect(locks.backend).toBe(backend);
      expect(locks.client).toBe(client);
      await expectWorkingLocks(locks, probe, uniqueName(`user-client-${backend}`));
      expect(await state(client)).toBe('open');

      await apps.close(app);
      // Give a (wrongly) closing client the time to finish closing.
      await delay(200);
      expect(await state(client)).toBe('open');
      // ...and still takes locks.
      const after = new lockClasses[backend](uniqueName('after-close'), { client });
      expect(await after.acquire(false)).toBe(true);
      expect(await probe.isLocked(after.name)).toBe(true);
      await after.release();
    } finally {
      await close(client);
    }
  });

  it('forRoot({ connection }) closes the client it created on app.close()', async () => {
    const app = await apps.start({ imports: [SherlockModule.forRoot(backendOptions(backend))] });
    const locks = app.get(LockService);
    await expectWorkingLocks(locks, probe, uniqueName(`owned-client-${backend}`));
    const client = locks.client;
    expect(await state(client)).toBe('open');

    await apps.close(app);
    await waitFor(async () => (await state(client)) === 'closed', {
      what: `the ${backend} client closing`,
    });
    // A lock asked for after shutdown must not quietly open a new connection.
    expect(() => locks.create(uniqueName('after-close'))).toThrow(/shut down/);
  });
});

const config = () => ({
  sherlock: { backend: 'redis', url: redisUrl(), namespace: 'from-config' },
});

describe('forRootAsync()', () => {
  const redis = useProbe('redis');
  const memcached = useProbe('memcached');
  const etcd = useProbe('etcd');

  it('useFactory with inject: [ConfigService]', async () => {
    const app = await apps.start({
      imports: [
        ConfigModule.forRoot({ ignoreEnvFile: true, load: [config] }),
        SherlockModule.forRootAsync({
          imports: [ConfigModule],
          inject: [ConfigService],
          useFactory: (settings: ConfigService): SherlockModuleOptions => ({
            backend: settings.getOrThrow<BackendName>('sherlock.backend'),
            connection: settings.getOrThrow<string>('sherlock.url'),
            namespace: settings.getOrThrow<string>('sherlock.namespace'),
          }),
        }),
      ],
    });
    const locks = app.get(LockService);
    expect(locks.backend).toBe('redis');
    const name = uniqueName('use-factory');
    expect(locks.create(name).key).toBe(`from-config_${name}`);
    await expectWorkingLocks(locks, redis, name, 'from-config');
  });

  it('useClass: a SherlockOptionsFactory built by the module', async () => {
    @Injectable()
    class MemcachedOptions implements SherlockOptionsFactory {
      static built = 0;
      constructor() {
        MemcachedOptions.built += 1;
      }
      createSherlockOptions(): SherlockModuleOptions {
        return { backend: 'memcached', connection: memcachedServerList(), namespace: 'by-class' };
      }
    }

    const app = await apps.start({
      imports: [SherlockModule.forRootAsync({ useClass: MemcachedOptions })],
    });
    const locks = app.get(LockService);
    expect(locks.backend).toBe('memcached');
    expect(MemcachedOptions.built).toBe(1);
    await expectWorkingLocks(locks, memcached, uniqueName('use-class'), 'by-class');
  });

  it('useExisting: a factory provider exported by another module', async () => {
    @Injectable()
    class EtcdOptions implements SherlockOptionsFactory {
      static built = 0;
      calls = 0;
      constructor() {
        EtcdOptions.built += 1;
      }
      createSherlockOptions(): SherlockModuleOptions {
        this.calls += 1;
        return { backend: 'etcd', connection: etcdHosts() };
      }
    }
    @Module({ providers: [EtcdOptions], exports: [EtcdOptions] })
    class OptionsModule {}

    const app = await apps.start({
      imports: [
        OptionsModule,
        SherlockModule.forRootAsync({ imports: [OptionsModule], useExisting: EtcdOptions }),
      ],
    });
    const locks = app.get(LockService);
    expect(locks.backend).toBe('etcd');
    // The exported instance made the options: useExisting did not build a second one.
    expect(EtcdOptions.built).toBe(1);
    expect(app.get(EtcdOptions).calls).toBe(1);
    await expectWorkingLocks(locks, etcd, uniqueName('use-existing'));
  });

  it('needs exactly one of useFactory, useClass or useExisting (TypeError)', () => {
    class Factory implements SherlockOptionsFactory {
      createSherlockOptions(): SherlockModuleOptions {
        return { backend: 'memory' };
      }
    }
    const message = /exactly one of useFactory, useClass or useExisting/;
    expect(() => SherlockModule.forRootAsync({})).toThrow(TypeError);
    expect(() => SherlockModule.forRootAsync({ imports: [] })).toThrow(message);
    const both = () =>
      SherlockModule.forRootAsync({ useFactory: () => ({ backend: 'memory' }), useClass: Factory });
    expect(both).toThrow(TypeError);
    expect(both).toThrow(message);
    expect(() => SherlockModule.forRootAsync({ useClass: Factory, useExisting: Factory })).toThrow(
      message,
    );
  });
});

describe('isGlobal', () => {
  @Injectable()
  class FeatureService {
    constructor(readonly locks: LockService) {}
  }
  @Module({ providers: [FeatureService], exports: [FeatureService] })
  class FeatureModule {}

  it('lets a feature module inject LockService without importing SherlockModule', async () => {
    const app = await apps.start({
      imports: [SherlockModule.forRoot({ backend: 'memory', isGlobal: true }), FeatureModule],
    });
    const { locks } = app.get(FeatureService);
    expect(locks).toBe(app.get(LockService));
    const name = uniqueName('global');
    expect(await locks.run(name, async () => locks.isLocked(name))).toBe(true);
    expect(await locks.isLocked(name)).toBe(false);
  });

  it('without it, the feature module cannot resolve LockService (the control case)', async () => {
    const compiling = Test.createTestingModule({
      imports: [SherlockModule.forRoot({ backend: 'memory' }), FeatureModule],
    }).compile();
    await expect(compiling).rejects.toThrow(/FeatureService/);
  });
});

describe('named registrations', () => {
  const redis = useProbe('redis');
  const etcd = useProbe('etcd');

  @Injectable()
  class Ledger {
    constructor(
      @InjectLockService('audit') readonly audit: LockService,
      @InjectLockService() readonly main: LockService,
      readonly plain: LockService,
    ) {}
  }

  it('each registration talks to its own backend', async () => {
    const app = await apps.start({
      imports: [
        SherlockModule.forRoot({ backend: 'redis', connection: redisUrl() }),
        SherlockModule.forRoot({ name: 'audit', backend: 'etcd', connection: etcdHosts() }),
      ],
      providers: [Ledger],
    });
    const { audit, main, plain } = app.get(Ledger);
    expect(audit.backend).toBe('etcd');
    expect(audit.registration).toBe('audit');
    expect(main.backend).toBe('redis');
    expect(main.registration).toBe('default');
    expect(plain).toBe(main);
    expect(app.get(getLockServiceToken('audit'))).toBe(audit);

    const auditName = uniqueName('audit');
    const auditLock = await audit.acquire(auditName);
    expect(await etcd.isLocked(auditName)).toBe(true);
    expect(await redis.isLocked(auditName)).toBe(false);
    await auditLock.release();
    expect(await etcd.isLocked(auditName)).toBe(false);

    const mainName = uniqueName('main');
    const mainLock = await main.acquire(mainName);
    expect(await redis.isLocked(mainName)).toBe(true);
    expect(await etcd.isLocked(mainName)).toBe(false);
    await mainLock.release();
    expect(await redis.isLocked(mainName)).toBe(false);
  });
});

describe('a registration owns its settings: nothing comes from configure()', () => {
  afterEach(() => resetConfiguration());

  it("configure({ namespace: 'x', expire: 1 }) before and after the module starts changes none of its keys or expiries", async () => {
    // The registration sets neither namespace nor expire: its locks get the library's defaults
    // (no prefix, 60 s), never what configure() set for the default manager.
    configure({ backend: 'memory', namespace: 'x', expire: 1 });
    const app = await apps.start({
      imports: [SherlockModule.forRoot({ backend: 'redis', connection: redisUrl() })],
    });
    const locks = app.get(LockService);
    const redis = new Redis(redisUrl());
    const check = async (label: string) => {
      const name = uniqueName(label);
      const lock = await locks.acquire(name);
      try {
        expect(lock.key, label).toBe(name);
        expect(lock.expire, label).toBe(DEFAULT_LOCK_OPTIONS.expire);
        expect(lock.timeout, label).toBe(DEFAULT_LOCK_OPTIONS.timeout);
        // The server has the registration's expiry (60 s), not configure()'s 1 or 2 ms.
        expect(await redis.pttl(name), label).toBeGreaterThan(50_000);
        await delay(50);
        expect(await redis.exists(name), `${label}: still held after 50 ms`).toBe(1);
      } finally {
        await lock.release();
      }
    };
    try {
      await check('configured-before');
      configure({ namespace: 'y', expire: 2, timeout: 1 });
      await check('configured-after');
      expect(locks.manager.defaults.namespace).toBeNull();
    } finally {
      redis.disconnect();
    }
  });
});
