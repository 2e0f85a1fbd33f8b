/**
 * Runs the sample app (sample-app/src) for the e2e tests: a real Nest application listening on
 * 127.0.0.1, port 0, configured the way production configures it (environment variables read by
 * ConfigService), with the AccountStore swapped for one the test shares between instances.
 */
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';

import { AccountStore } from '../../../sample-app/src/accounts/account.store.js';
import { AppModule } from '../../../sample-app/src/app.module.js';
import { etcdHostsValue, memcachedServers, redisUrl } from '../../support/env.js';

export const BACKENDS = ['memory', 'redis', 'memcached', 'etcd'] as const;
export type SampleBackend = (typeof BACKENDS)[number];

/** The variables that point the sample app at `backend` on the test servers. */
export function backendEnv(backend: SampleBackend): Record<string, string> {
  switch (backend) {
    case 'memory':
      return { SHERLOCK_BACKEND: 'memory' };
    case 'redis':
      return { SHERLOCK_BACKEND: 'redis', REDIS_URL: redisUrl() };
    case 'memcached':
      return { SHERLOCK_BACKEND: 'memcached', MEMCACHED_SERVERS: memcachedServers() };
    case 'etcd':
      return { SHERLOCK_BACKEND: 'etcd', ETCD_HOSTS: etcdHostsValue() };
  }
}

/** A lock namespace no other test run uses, so runs sharing the servers do not collide. */
export function uniqueNamespace(prefix: string): string {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
}

/** Environment variables to set; `undefined` unsets one. */
export type EnvVars = Record<string, string | undefined>;

function assignEnv(vars: EnvVars): void {
  for (const [key, value] of Object.entries(vars)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
}

/**
 * Runs `fn` with `vars` set in `process.env`, then restores the previous values. The sample app
 * reads its configuration while it is created (the SherlockModule options factory), so the
 * variables only need to be there for that.
 */
export async function withEnv<T>(vars: EnvVars, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((key) => [key, process.env[key]]));
  assignEnv(vars);
  try {
    return await fn();
  } finally {
    assignEnv(saved);
  }
}

/** A started instance of the sample app. */
export interface SampleApp {
  readonly app: INestApplication;
  /** `http://127.0.0.1:PORT` */
  readonly url: string;
}

export interface StartOptions {
  /** Environment the app is configured from (SHERLOCK_BACKEND, REDIS_URL, ...). */
  env: EnvVars;
  /** The account store, to share one between instances (default: the app's own). */
  store?: AccountStore;
}

/** Creates, initialises and starts one instance of the sample app. Close it with `app.close()`. */
export async function startSampleApp({ env, store }: StartOptions): Promise<SampleApp> {
  return withEnv(env, async () => {
    let builder = Test.createTestingModule({ imports: [AppModule] });
    if (store) builder = builder.overrideProvider(AccountStore).useValue(store);
    const moduleRef = await builder.compile();
    const app = moduleRef.createNestApplication({ logger: ['error'] });
    try {
      await app.listen(0, '127.0.0.1');
      return { app, url: await app.getUrl() };
    } catch (err) {
      await app.close();
      throw err;
    }
  });
}

/** Starts `count` instances with the same configuration (and store, if given). */
export async function startReplicas(count: number, options: StartOptions): Promise<SampleApp[]> {
  const replicas: SampleApp[] = [];
  try {
    for (let i = 0; i < count; i++) replicas.push(await startSampleApp(options));
    return replicas;
  } catch (err) {
    await closeAll(replicas);
    throw err;
  }
}

/** Closes every instance (all of them, even if one fails to close). */
export async function closeAll(replicas: readonly SampleApp[]): Promise<void> {
  const results = await Promise.allSettled(replicas.map(({ app }) => app.close()));
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
}
