import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, inject, it } from 'vitest';

import { etcdHosts, memcachedServerList, redisUrl } from '../support/env.js';
import {
  redisCommand,
  redisCommands,
  startEtcd,
  startMemcached,
  startRedis,
  tcpExchange,
  type ServerHandle,
} from '../support/servers.js';

function hostPort(address: string): { host: string; port: number } {
  const index = address.lastIndexOf(':');
  return { host: address.slice(0, index), port: Number(address.slice(index + 1)) };
}

function redisTarget(url: string): { host: string; port: number; password: string | undefined } {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    password: parsed.password ? decodeURIComponent(parsed.password) : undefined,
  };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function etcdPut(url: string, key: string, value: string): Promise<void> {
  const response = await fetch(`${url}/v3/kv/put`, {
    method: 'POST',
    body: JSON.stringify({
      key: Buffer.from(key).toString('base64'),
      value: Buffer.from(value).toString('base64'),
    }),
  });
  expect(response.status).toBe(200);
}

async function etcdGet(url: string, key: string): Promise<string | undefined> {
  const response = await fetch(`${url}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: Buffer.from(key).toString('base64') }),
  });
  expect(response.status).toBe(200);
  const body = (await response.json()) as { kvs?: { value?: string }[] };
  const encoded = body.kvs?.[0]?.value;
  return encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString('utf8');
}

describe('global test servers', () => {
  it('exports the addresses through process.env and inject()', () => {
    expect(inject('redisUrl')).toBe(redisUrl());
    expect(inject('memcachedServers')).toBe(process.env['MEMCACHED_SERVERS']);
    expect(inject('etcdHosts')).toBe(process.env['ETCD_HOSTS']);
  });

  it('redis answers PING and stores values', async () => {
    const target = redisTarget(redisUrl());
    expect(await redisCommand(target, ['PING'])).toBe('PONG');
    const key = `infra:${randomUUID()}`;
    const replies = await redisCommands(target, [
      ['SET', key, 'value', 'PX', 10_000],
      ['GET', key],
      ['DEL', key],
    ]);
    expect(replies).toEqual(['OK', 'value', 1]);
  });

  it('memcached answers version and stores values', async () => {
    const [first] = memcachedServerList();
    expect(first).toBeDefined();
    const { host, port } = hostPort(first ?? '');
    const version = await tcpExchange(host, port, 'version\r\n', (got) => got.endsWith('\r\n'));
    expect(version).toMatch(/^VERSION \d+\.\d+/);

    const key = `infra-${randomUUID()}`;
    const reply = await tcpExchange(
      host,
      port,
      `set ${key} 0 30 5\r\nhello\r\nget ${key}\r\ndelete ${key}\r\n`,
      (got) => /DELETED\r\n$|NOT_FOUND\r\n$/.test(got),
    );
    expect(reply).toBe(`STORED\r\nVALUE ${key} 0 5\r\nhello\r\nEND\r\nDELETED\r\n`);
  });

  it('etcd is healthy and stores values', async () => {
    const [url] = etcdHosts();
    expect(url).toBeDefined();
    const base = url ?? '';
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ health: 'true' });

    const version = (await (await fetch(`${base}/version`)).json()) as { etcdserver?: string };
    expect(version.etcdserver).toMatch(/^3\./);

    const key = `infra/${randomUUID()}`;
    await etcdPut(base, key, 'value');
    expect(await etcdGet(base, key)).toBe('value');
  });
});

describe('extra servers', () => {
  const servers: ServerHandle[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.stop()));
  });

  it('redis with appendonly keeps data across SIGKILL + restart on the same port', async () => {
    const redis = await startRedis({ appendonly: true });
    servers.push(redis);
    const { port, dataDir } = redis;
    const firstPid = redis.pid;
    expect(firstPid).toBeTypeOf('number');
    expect(redis.url).toBe(`redis://127.0.0.1:${port}`);
    expect(await redisCommand(redis, ['SET', 'survivor', 'still here'])).toBe('OK');

    await redis.kill('SIGKILL');
    expect(redis.running).toBe(false);
    expect(redis.pid).toBeUndefined();
    expect(isAlive(firstPid ?? 0)).toBe(false);
    await expect(redisCommand(redis, ['PING'], 500)).rejects.toThrow();

    await redis.restart();
    expect(redis.running).toBe(true);
    expect(redis.pid).not.toBe(firstPid);
    expect(redis.port).toBe(port);
    expect(redis.dataDir).toBe(dataDir);
    expect(await redisCommand(redis, ['GET', 'survivor'])).toBe('still here');
  });

  it('redis without persistence loses its data on restart', async () => {
    const redis = await startRedis();
    servers.push(redis);
    expect(await redisCommand(redis, ['SET', 'ephemeral', '1'])).toBe('OK');
    expect(await redisCommand(redis, ['CONFIG', 'GET', 'appendonly'])).toEqual([
      'appendonly',
      'no',
    ]);

    await redis.restart(); // graceful SIGTERM: with --save '' nothing is written on shutdown
    expect(await redisCommand(redis, ['GET', 'ephemeral'])).toBeNull();
    expect(await redisCommand(redis, ['DBSIZE'])).toBe(0);
  });

  it('redis with a password rejects unauthenticated clients', async () => {
    const redis = await startRedis({ password: 's3cret/pw' });
    servers.push(redis);
    expect(redis.url).toBe(`redis://:s3cret%2Fpw@127.0.0.1:${redis.port}`);
    expect(redisTarget(redis.url).password).toBe('s3cret/pw');
    expect(await redisCommand({ port: redis.port }, ['PING'])).toMatchObject({
      error: expect.stringMatching(/^NOAUTH/),
    });
    expect(await redisCommand(redis, ['PING'])).toBe('PONG');
  });

  it('pause() makes redis hang and resume() brings it back', async () => {
    const redis = await startRedis();
    servers.push(redis);
    redis.pause();
    expect(redis.paused).toBe(true);
    await expect(redisCommand(redis, ['PING'], 300)).rejects.toThrow(/no reply/);
    redis.resume();
    expect(await redisCommand(redis, ['PING'])).toBe('PONG');
  });

  it('stop() ends the process, frees the port and removes the temp dir', async () => {
    const redis = await startRedis();
    const { pid, dir, port } = redis;
    expect(existsSync(dir)).toBe(true);
    await redis.stop();
    expect(redis.running).toBe(false);
    expect(isAlive(pid ?? 0)).toBe(false);
    expect(existsSync(dir)).toBe(false);
    await expect(redisCommand({ port }, ['PING'], 500)).rejects.toThrow();
    await expect(redis.start()).rejects.toThrow(/stopped for good/);
  });

  it('memcached can be killed and restarted on the same port (and forgets everything)', async () => {
    const memcached = await startMemcached();
    servers.push(memcached);
    const { port } = memcached;
    expect(memcached.servers).toBe(`127.0.0.1:${port}`);
    const set = await tcpExchange('127.0.0.1', port, 'set k 0 0 1\r\nx\r\n', (got) =>
      got.endsWith('\r\n'),
    );
    expect(set).toBe('STORED\r\n');

    await memcached.kill();
    await expect(
      tcpExchange('127.0.0.1', port, 'version\r\n', (got) => got.endsWith('\r\n'), 500),
    ).rejects.toThrow();
    await memcached.restart();
    expect(memcached.port).toBe(port);
    const get = await tcpExchange('127.0.0.1', port, 'get k\r\n', (got) => got.endsWith('END\r\n'));
    expect(get).toBe('END\r\n');
  });

  it('etcd keeps its data across SIGKILL + restart on the same ports', async () => {
    const etcd = await startEtcd();
    servers.push(etcd);
    expect(etcd.url).toBe(`http://127.0.0.1:${etcd.port}`);
    expect(etcd.peerPort).not.toBe(etcd.port);
    await etcdPut(etcd.url, 'durable', 'yes');

    const firstPid = etcd.pid;
    await etcd.kill('SIGKILL');
    expect(isAlive(firstPid ?? 0)).toBe(false);
    await etcd.restart();
    expect(etcd.pid).not.toBe(firstPid);
    expect(await etcdGet(etcd.url, 'durable')).toBe('yes');
  });

  it('a server that cannot start fails fast with its log tail', async () => {
    const started = Date.now();
    await expect(startRedis({ args: ['--no-such-directive', 'x'] })).rejects.toThrow(
      /redis .* exited during startup[\s\S]*no-such-directive/,
    );
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
