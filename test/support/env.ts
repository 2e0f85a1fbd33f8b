/**
 * Where the test servers are. Set by the Vitest global setup (test/setup/global-setup.ts), or
 * from outside to use existing servers:
 *
 *   REDIS_URL=redis://127.0.0.1:6379  MEMCACHED_SERVERS=127.0.0.1:11211,...
 *   ETCD_HOSTS=http://127.0.0.1:2379,...
 */

export const REDIS_URL = 'REDIS_URL';
export const MEMCACHED_SERVERS = 'MEMCACHED_SERVERS';
export const ETCD_HOSTS = 'ETCD_HOSTS';
export const REDLOCK_URLS = 'REDLOCK_URLS';
export const POSTGRES_URL = 'POSTGRES_URL';
export const ZOOKEEPER_SERVERS = 'ZOOKEEPER_SERVERS';

// The same values are also available through Vitest's `inject()`.
declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
    memcachedServers: string;
    etcdHosts: string;
    redlockUrls: string;
    postgresUrl: string;
    zookeeperServers: string;
  }
}

function required(name: string): string {
  const value = process.env[name]?.trim();
  if (!value) {
    throw new Error(
      `${name} is not set. Run the tests with Vitest (its global setup test/setup/global-setup.ts ` +
        `starts the servers and sets it) or set ${name} to an existing server.`,
    );
  }
  return value;
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/** `redis://[:password@]host:port[/db]` */
export function redisUrl(): string {
  return required(REDIS_URL);
}

/** `host:port[,host:port...]`, the format memjs' `Client.create()` accepts. */
export function memcachedServers(): string {
  return required(MEMCACHED_SERVERS);
}

export function memcachedServerList(): string[] {
  return list(memcachedServers());
}

/** The raw ETCD_HOSTS value, `http://host:port[,http://host:port...]`. */
export function etcdHostsValue(): string {
  return required(ETCD_HOSTS);
}

/** ETCD_HOSTS split into URLs, the format etcd3's `new Etcd3({ hosts })` accepts. */
export function etcdHosts(): string[] {
  return list(etcdHostsValue());
}

/** REDLOCK_URLS: `redis://host:port,...`, three independent Redis servers for the Redlock backend. */
export function redlockUrls(): string[] {
  return list(required(REDLOCK_URLS));
}

/** POSTGRES_URL: `postgres://user@host:port/database`. */
export function postgresUrl(): string {
  return required(POSTGRES_URL);
}

/** ZOOKEEPER_SERVERS: a ZooKeeper connect string, `host:port[,host:port...]`. */
export function zookeeperServers(): string {
  return required(ZOOKEEPER_SERVERS);
}
