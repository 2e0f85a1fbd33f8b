/**
 * Chaos baseline: several worker processes take turns on one lock, no fault. The checker must
 * find no overlap, strictly increasing fencing tokens and an exact counter, on every backend that
 * locks across processes.
 */
import { describe, expect, it } from 'vitest';

import {
  etcdHostsValue,
  memcachedServers,
  postgresUrl,
  redisUrl,
  redlockUrls,
  zookeeperServers,
} from '../support/env.js';
import type { ChaosBackend } from './worker.js';
import { runChaos, SCALE } from './harness.js';

const address: Record<ChaosBackend, () => string> = {
  redis: redisUrl,
  etcd: etcdHostsValue,
  memcached: memcachedServers,
  redlock: () => redlockUrls().join(','),
  postgres: postgresUrl,
  zookeeper: zookeeperServers,
};

describe(
  'chaos baseline: 4 processes on one lock, no fault',
  { timeout: 60_000 + 80_000 * SCALE },
  () => {
    it.for(['redis', 'etcd', 'memcached', 'redlock', 'postgres', 'zookeeper'] as const)(
      '%s: no overlap, tokens strictly increasing, counter exact',
      async (backend) => {
        const { report, counter } = await runChaos({
          scenario: `baseline-${backend}`,
          backend,
          address: address[backend](),
          workers: 4,
          sections: 40 * SCALE,
          durationMs: 30_000 * SCALE,
        });
        expect(report.examples).toEqual([]);
        expect(report.overlaps).toBe(0);
        expect(report.signalledLosses).toBe(0);
        expect(report.tokenRegressions).toBe(0);
        expect(report.lostUpdates).toBe(0);
        expect(report.sections).toBe(counter);
        expect(report.sections).toBeGreaterThan(4 * 10 * SCALE);
      },
    );
  },
);
