/**
 * A Redis Sentinel setup for the tests: a master, one replica and three Sentinels (quorum 2,
 * `down-after-milliseconds` 1000, `failover-timeout` 3000), real processes on free loopback ports
 * (test/support/servers.ts), stopped by PID.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import {
  HOST,
  type RedisServer,
  redisCommand,
  type SentinelServer,
  startRedis,
  startSentinel,
} from './servers.js';

export const MASTER_NAME = 'mymaster';

export interface SentinelGroup {
  /** The two Redis servers (master and replica at first; their roles change on failover). */
  readonly nodes: readonly RedisServer[];
  readonly sentinels: readonly SentinelServer[];
  /** `[{ host, port }]` of the Sentinels, for ioredis' `sentinels` option. */
  readonly addresses: { host: string; port: number }[];
  /** `redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/mymaster` */
  readonly url: string;
  /** The port of the master as the Sentinels say now. */
  masterPort(): Promise<number>;
  /** The node that is the master now. */
  master(): Promise<RedisServer>;
  /**
   * Waits until the current master has `replicas` replicas connected with their link up and the
   * Sentinels know them (ready for the next failover).
   */
  settled(replicas?: number): Promise<void>;
  /**
   * SIGKILLs the master; resolves when the Sentinels name another one (`promotedAfter`: ms from
   * the kill). The killed node stays down (call `revive`).
   */
  killMaster(): Promise<{ killed: RedisServer; promoted: RedisServer; promotedAfter: number }>;
  /** Starts a killed node again (Sentinel then makes it a replica of the new master). */
  revive(node: RedisServer): Promise<void>;
  stop(): Promise<void>;
}

const info = async (port: number, section: string) =>
  String(await redisCommand({ port }, ['INFO', section], 1_000));

export async function startSentinelGroup(): Promise<SentinelGroup> {
  const master = await startRedis();
  const started: { stop(): Promise<void> }[] = [master];
  const stop = async () => {
    await Promise.all(started.map((server) => server.stop()));
  };
  try {
    const replica = await startRedis({ args: ['--replicaof', HOST, String(master.port)] });
    started.push(replica);
    const sentinels: SentinelServer[] = [];
    for (let i = 0; i < 3; i++) {
      const sentinel = await startSentinel(master.port, { name: MASTER_NAME });
      started.push(sentinel);
      sentinels.push(sentinel);
    }
    const nodes = [master, replica];
    const masterPort = async () => {
      for (const sentinel of sentinels) {
        try {
          const reply = await redisCommand({ port: sentinel.port }, [
            'SENTINEL',
            'get-master-addr-by-name',
            MASTER_NAME,
          ]);
          if (Array.isArray(reply)) return Number(reply[1]);
        } catch {
          // that Sentinel is not answering: ask the next
        }
      }
      throw new Error('no Sentinel names a master');
    };
    const nodeOn = (port: number) => {
      const node = nodes.find((n) => n.port === port);
      if (!node) throw new Error(`no node on port ${port}`);
      return node;
    };
    const settled = async (replicas = 1) => {
      for (let i = 0; ; i++) {
        try {
          const port = await masterPort();
          const replication = await info(port, 'replication');
          const up = (replication.match(/^slave\d+:.*state=online/gmu) ?? []).length;
          const known = await Promise.all(
            sentinels.map(async (s) => {
              const reply = (await redisCommand({ port: s.port }, [
                'SENTINEL',
                'master',
                MASTER_NAME,
              ])) as string[];
              const field = (k: string) => reply[reply.indexOf(k) + 1];
              return (
                Number(field('port')) === port &&
                Number(field('num-slaves')) >= replicas &&
                Number(field('num-other-sentinels')) >= sentinels.length - 1 &&
                field('flags') === 'master'
              );
            }),
          );
          if (replication.includes('role:master') && up >= replicas && known.every(Boolean)) {
            return;
          }
        } catch {
          // a node or a Sentinel is (re)starting
        }
        if (i > 600) throw new Error('the Sentinel group did not settle within 60 s');
        await sleep(100);
      }
    };
    await settled();
    return {
      nodes,
      sentinels,
      addresses: sentinels.map((s) => ({ host: HOST, port: s.port })),
      url: `redis+sentinel://${sentinels.map((s) => `${HOST}:${s.port}`).join(',')}/${MASTER_NAME}`,
      masterPort,
      master: async () => nodeOn(await masterPort()),
      settled,
      async killMaster() {
        const killed = nodeOn(await masterPort());
        await killed.kill('SIGKILL');
        const at = performance.now();
        for (let i = 0; ; i++) {
          const port = await masterPort().catch(() => killed.port);
          if (port !== killed.port) {
            return { killed, promoted: nodeOn(port), promotedAfter: performance.now() - at };
          }
          if (i > 600) throw new Error('no failover within 60 s');
          await sleep(50);
        }
      },
      async revive(node) {
        await node.start();
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
