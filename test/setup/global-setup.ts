/**
 * Vitest global setup: one Redis, one Memcached, one Etcd, and three more independent Redis
 * servers for the Redlock backend, for the whole run, on free ports; and one PostgreSQL when the
 * run may use it (see mayUsePostgres).
 *
 * A backend whose variable (REDIS_URL, MEMCACHED_SERVERS, ETCD_HOSTS, REDLOCK_URLS) is already set is used as
 * is and nothing is started for it. The addresses are exported through `process.env` (inherited
 * by the test workers, which are forked after this runs) and `project.provide()` (`inject()`).
 */
import { readFileSync, statSync } from 'node:fs';
import type { TestProject } from 'vitest/node';

import {
  ETCD_HOSTS,
  MEMCACHED_SERVERS,
  POSTGRES_URL,
  REDIS_URL,
  REDLOCK_URLS,
  ZOOKEEPER_SERVERS,
} from '../support/env.js';
import {
  startEtcd,
  startMemcached,
  startPostgres,
  startRedis,
  startZooKeeper,
  type ServerHandle,
} from '../support/servers.js';

interface Backend {
  envVar: string;
  start: () => Promise<{ servers: ServerHandle[]; address: string }>;
  /** Started only when this says the run needs it (default: always). */
  neededBy?: (project: TestProject) => boolean;
}

/**
 * Whether a run may use PostgreSQL (initdb and its start take seconds, so a run that cannot reach
 * it does without): a run of everything, or of a folder or pattern, does; a run of named files
 * does if one of them goes through the backend table, the contract kit or PostgreSQL itself.
 */
function mayUsePostgres(project: TestProject): boolean {
  return mayUse(project, /fixtures|withCapability|contract|postgres/i);
}

/** Whether a run may use ZooKeeper (its JVM takes seconds to start): as for PostgreSQL. */
function mayUseZooKeeper(project: TestProject): boolean {
  return mayUse(project, /fixtures|withCapability|contract|zookeeper/i);
}

function mayUse(project: TestProject, pattern: RegExp): boolean {
  // Vitest's CLI filters (the files `vt` was given); not a public API, hence the fallback.
  const filters = (project.vitest as unknown as { filenamePattern?: readonly string[] })
    .filenamePattern;
  if (!filters || filters.length === 0) return true;
  return filters.some((filter) => {
    try {
      if (!statSync(filter).isFile()) return true;
      return pattern.test(readFileSync(filter, 'utf8'));
    } catch {
      return true; // a pattern, not a path
    }
  });
}

const BACKENDS: Backend[] = [
  {
    envVar: REDIS_URL,
    start: async () => {
      const server = await startRedis();
      return { servers: [server], address: server.url };
    },
  },
  {
    envVar: REDLOCK_URLS,
    start: async () => {
      const servers = await Promise.all([startRedis(), startRedis(), startRedis()]);
      return { servers, address: servers.map((server) => server.url).join(',') };
    },
  },
  {
    envVar: MEMCACHED_SERVERS,
    start: async () => {
      const server = await startMemcached();
      return { servers: [server], address: server.servers };
    },
  },
  {
    envVar: ETCD_HOSTS,
    start: async () => {
      const server = await startEtcd();
      return { servers: [server], address: server.url };
    },
  },
  {
    envVar: POSTGRES_URL,
    start: async () => {
      const server = await startPostgres();
      return { servers: [server], address: server.url };
    },
    neededBy: mayUsePostgres,
  },
  {
    envVar: ZOOKEEPER_SERVERS,
    start: async () => {
      const server = await startZooKeeper();
      return { servers: [server], address: server.servers };
    },
    neededBy: mayUseZooKeeper,
  },
];

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started: ServerHandle[] = [];
  const exported: string[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.allSettled(started.map((server) => server.stop()));
  };

  const results = await Promise.allSettled(
    BACKENDS.filter(
      ({ envVar, neededBy }) => !process.env[envVar]?.trim() && (neededBy?.(project) ?? true),
    ).map(async (backend) => {
      const { servers, address } = await backend.start();
      started.push(...servers);
      process.env[backend.envVar] = address;
      exported.push(backend.envVar);
    }),
  );
  const failures = results.flatMap((result) =>
    result.status === 'rejected'
      ? [result.reason instanceof Error ? result.reason.message : String(result.reason)]
      : [],
  );
  if (failures.length > 0) {
    await stopAll();
    for (const name of exported) delete process.env[name];
    throw new Error(`Could not start the test servers:\n\n${failures.join('\n\n')}`);
  }

  const value = (name: string): string => process.env[name] ?? '';
  project.provide('redisUrl', value(REDIS_URL));
  project.provide('memcachedServers', value(MEMCACHED_SERVERS));
  project.provide('etcdHosts', value(ETCD_HOSTS));
  project.provide('redlockUrls', value(REDLOCK_URLS));
  project.provide('postgresUrl', value(POSTGRES_URL));
  project.provide('zookeeperServers', value(ZOOKEEPER_SERVERS));

  if (started.length > 0) {
    const list = started.map((server) => `${server.kind} :${server.port} (pid ${server.pid})`);
    console.log(`[test servers] started ${list.join(', ')}`);
  }

  return async () => {
    await stopAll();
    for (const name of exported) delete process.env[name];
  };
}
