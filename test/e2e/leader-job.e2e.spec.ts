/**
 * The sample app's leader-only digest job (sample-app/src/digest), in process: on a backend that
 * can elect (memory here; two replicas on Redis and Etcd, SIGTERM and SIGKILL, are in
 * leader-job.slow.spec.ts) the replica leads and the job runs at each tick with its term; on
 * Memcached, which cannot hold an election, the app still starts and the job is disabled.
 */
import request from 'supertest';
import { afterAll, describe, expect, it, vi } from 'vitest';

import type { DigestStats } from '../../sample-app/src/digest/digest.job.js';
import {
  backendEnv,
  closeAll,
  type SampleApp,
  startSampleApp,
  uniqueNamespace,
} from './support/sample-app.js';

// Read when the job's class is loaded (a decorator argument): every second instead of every minute.
const previousCron = vi.hoisted(() => {
  const previous = process.env['DIGEST_CRON'];
  process.env['DIGEST_CRON'] = '* * * * * *';
  return previous;
});

afterAll(() => {
  if (previousCron === undefined) delete process.env['DIGEST_CRON'];
  else process.env['DIGEST_CRON'] = previousCron;
});

const digest = async ({ url }: SampleApp): Promise<DigestStats> =>
  (await request(url).get('/jobs/digest').expect(200)).body as DigestStats;

describe('the leader-only digest job of the sample app', () => {
  it('memory: this replica leads and runs the digest at each tick, with its term', async () => {
    const replica = await startSampleApp({
      env: { ...backendEnv('memory'), SHERLOCK_NAMESPACE: uniqueNamespace('e2e-digest-memory') },
    });
    try {
      await vi.waitFor(async () => expect((await digest(replica)).runs).toBeGreaterThanOrEqual(2), {
        timeout: 20_000,
        interval: 200,
      });
      const stats = await digest(replica);
      expect(stats).toMatchObject({ enabled: true, leader: true });
      expect(stats.term).toMatch(/^\d+$/);
      expect(stats.recent.map(({ term }) => term)).toContain(stats.term);
    } finally {
      await closeAll([replica]);
    }
  });

  it('memcached: the app starts, the digest is disabled and says why', async () => {
    const replica = await startSampleApp({
      env: { ...backendEnv('memcached'), SHERLOCK_NAMESPACE: uniqueNamespace('e2e-digest-mc') },
    });
    try {
      const stats = await digest(replica);
      expect(stats).toMatchObject({ enabled: false, leader: false, runs: 0, term: null });
      expect(stats.reason).toMatch(/'memcached' backend cannot hold a leader election/);
      // The rest of the app works: a @Locked handler on the same backend.
      await request(replica.url).post('/orders/1/process?ms=1').expect(201);
    } finally {
      await closeAll([replica]);
    }
  });
});
