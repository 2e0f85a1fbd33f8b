/**
 * Local clusters for the tests: a Redis Cluster of three masters, and a three-member etcd.
 * Built on test/support/servers.ts (real processes on free loopback ports, stopped by PID).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';

import {
  type EtcdServer,
  findBinary,
  getFreePorts,
  type RedisServer,
  redisCommand,
  startEtcdMember,
  startRedis,
} from './servers.js';

const run = promisify(execFile);

export interface RedisCluster {
  readonly nodes: readonly RedisServer[];
  /** `[{ host, port }]` of every master, for `new Cluster(...)`. */
  readonly startupNodes: { host: string; port: number }[];
  stop(): Promise<void>;
}

/** Three `redis-server --cluster-enabled yes`, joined by `redis-cli --cluster create`. */
export async function startRedisCluster(): Promise<RedisCluster> {
  const cli = findBinary('redis-cli');
  if (!cli) throw new Error('redis-cli not found (Debian package redis-tools, with redis-server)');
  const nodes = await Promise.all(
    [0, 1, 2].map(() =>
      startRedis({
        args: [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          '2000',
          '--cluster-announce-ip',
          '127.0.0.1',
        ],
      }),
    ),
  );
  const stop = async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  };
  try {
    await run(cli, [
      '--cluster',
      'create',
      ...nodes.map((node) => `127.0.0.1:${node.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    for (let i = 0; ; i++) {
      const infos = await Promise.all(
        nodes.map((node) =>
          redisCommand({ host: '127.0.0.1', port: node.port }, ['CLUSTER', 'INFO']),
        ),
      );
      if (infos.every((info) => String(info).includes('cluster_state:ok'))) break;
      if (i > 200) throw new Error(`redis cluster not ok: ${String(infos[0])}`);
      await sleep(50);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    nodes,
    startupNodes: nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
    stop,
  };
}

export interface EtcdCluster {
  readonly members: readonly EtcdServer[];
  /** Every member's client URL. */
  readonly hosts: string[];
  stop(): Promise<void>;
}

/** Three etcd members on loopback, started together (a member is healthy once there is a leader). */
export async function startEtcdCluster(): Promise<EtcdCluster> {
  const ports = await getFreePorts(6);
  const names = ['m0', 'm1', 'm2'];
  const peer = (i: number) => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const initialCluster = names.map((name, i) => `${name}=${peer(i)}`).join(',');
  const token = `sherlock-${process.pid}-${Date.now().toString(36)}`;
  const settled = await Promise.allSettled(
    names.map((name, i) =>
      startEtcdMember(ports[2 * i] ?? 0, ports[2 * i + 1] ?? 0, {
        args: [
          '--name',
          name,
          '--initial-cluster',
          initialCluster,
          '--initial-cluster-token',
          token,
          '--heartbeat-interval',
          '100',
          '--election-timeout',
          '1000',
        ],
      }),
    ),
  );
  const members = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const stop = async () => {
    await Promise.all(members.map((member) => member.stop()));
  };
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  return { members, hosts: members.map((member) => member.url), stop };
}
