/**
 * A network cut between a holder and the server (a loopback TCP proxy that stops forwarding,
 * like a partition: requests hang, nothing is refused). With autoExtend, the holder's renewals
 * stop getting through; its signal must abort before its lock can be granted to anyone else,
 * while a waiter on the other side of the cut carries on and gets the lock after the expiry.
 */
import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import {
  type BaseLock,
  EtcdLock,
  PostgresLock,
  RedisLock,
  ZooKeeperClient,
  ZooKeeperLock,
} from 'nestjs-sherlock';
import pg from 'pg';
import { describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { etcdHosts, postgresUrl, redisUrl, zookeeperServers } from '../support/env.js';
import { TcpProxy } from './proxy.js';

const EXPIRE = 3_000;

interface Side {
  lock(name: string, options: Record<string, unknown>): BaseLock;
  close(): void;
}

const sides = {
  redis: (port: number | undefined): Side => {
    const url = new URL(redisUrl());
    const client = new Redis({
      host: '127.0.0.1',
      port: port ?? Number(url.port),
      maxRetriesPerRequest: 1,
    });
    client.on('error', () => undefined);
    return {
      lock: (name, options) => new RedisLock(name, { client, ...options }),
      close: () => client.disconnect(),
    };
  },
  etcd: (port: number | undefined): Side => {
    const hosts = port === undefined ? etcdHosts() : [`http://127.0.0.1:${port}`];
    const client = new Etcd3({ hosts });
    return {
      lock: (name, options) => new EtcdLock(name, { client, ...options }),
      close: () => client.close(),
    };
  },
  postgres: (port: number | undefined): Side => {
    const url = new URL(postgresUrl());
    if (port !== undefined) url.port = String(port);
    const client = new pg.Pool({ connectionString: url.href });
    client.on('error', () => undefined);
    return {
      lock: (name, options) => new PostgresLock(name, { client, ...options }),
      close: () => void client.end().catch(() => undefined),
    };
  },
  // Session timeout 10 s, longer than the expiry: the waiter gets the lock at the holder's
  // deadline (judged on ZooKeeper's clock), not at the end of the holder's session.
  zookeeper: (port: number | undefined): Side => {
    const servers = port === undefined ? zookeeperServers() : `127.0.0.1:${port}`;
    const client = new ZooKeeperClient(servers, { sessionTimeout: 10_000 });
    return {
      lock: (name, options) => new ZooKeeperLock(name, { client, ...options }),
      close: () => client.close(),
    };
  },
};

/** The server's address (its port is what the proxy forwards to). */
const targetOf = (backend: keyof typeof sides): URL =>
  backend === 'redis'
    ? new URL(redisUrl())
    : backend === 'etcd'
      ? new URL(etcdHosts()[0] ?? '')
      : backend === 'postgres'
        ? new URL(postgresUrl())
        : new URL(`zk://${zookeeperServers().split(',')[0] ?? ''}`);

describe('the network between the holder and the server is cut', () => {
  it.for(['redis', 'etcd', 'postgres', 'zookeeper'] as const)(
    '%s: the holder (autoExtend) sees its signal abort before the waiter on the other side gets the lock',
    async (backend) => {
      const target = targetOf(backend);
      const proxy = await TcpProxy.start(Number(target.port));
      const cutOff = sides[backend](proxy.port);
      const direct = sides[backend](undefined);
      try {
        const name = uniqueName(`cut-${backend}`);
        const holder = cutOff.lock(name, {
          expire: EXPIRE,
          autoExtend: true,
          operationTimeout: 1_000,
        });
        const waiter = direct.lock(name, { timeout: 20_000 });
        expect(await holder.acquire(false)).toBe(true);
        const holderToken = BigInt(holder.fencingToken ?? -1);
        let lostAt = 0;
        holder.signal.addEventListener('abort', () => (lostAt = performance.now()));
        // Renewals get through before the cut: held past its first expiry.
        await new Promise((resolve) => setTimeout(resolve, EXPIRE * 1.2));
        expect(holder.signal.aborted, 'renewed while the network was up').toBe(false);

        const waiting = waiter.acquire().then(() => performance.now());
        proxy.cut();
        const cutAt = performance.now();
        const acquiredAt = await waiting;
        console.log(
          `${backend}: cut at 0, holder's signal aborted at ${(lostAt - cutAt).toFixed(0)} ms, waiter got the lock at ${(acquiredAt - cutAt).toFixed(0)} ms`,
        );
        expect(lostAt, "the holder's signal aborted").toBeGreaterThan(0);
        expect(lostAt, 'before the lock went to the waiter').toBeLessThan(acquiredAt);
        expect(holder.signal.reason).toMatchObject({ name: 'LockLostError' });
        expect(acquiredAt - cutAt, 'the waiter got it after about one expiry').toBeLessThan(
          EXPIRE + 5_000,
        );
        expect(BigInt(waiter.fencingToken ?? -1)).toBeGreaterThan(holderToken);
        await waiter.release();
      } finally {
        cutOff.close();
        direct.close();
        await proxy.close();
      }
    },
  );
});
