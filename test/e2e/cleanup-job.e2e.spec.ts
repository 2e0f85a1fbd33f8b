/**
 * The sample app's scheduled cleanup job on two instances sharing a lock backend: at every tick
 * both schedulers fire, one instance runs the job and the other skips it.
 */
import { SchedulerRegistry } from '@nestjs/schedule';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

import {
  BACKENDS,
  backendEnv,
  closeAll,
  type SampleApp,
  startReplicas,
  uniqueNamespace,
} from './support/sample-app.js';

// The cron expression is read when the job's class is loaded (a decorator argument), so it must
// be set before the sample app is imported: every second instead of every 10 s.
const previousCron = vi.hoisted(() => {
  const previous = process.env['CLEANUP_CRON'];
  process.env['CLEANUP_CRON'] = '* * * * * *';
  return previous;
});

/** How long both instances run side by side. */
const OBSERVE_MS = 3_500;

interface CleanupStats {
  runs: number;
  recent: string[];
}

afterAll(() => {
  if (previousCron === undefined) delete process.env['CLEANUP_CRON'];
  else process.env['CLEANUP_CRON'] = previousCron;
});

describe.each(BACKENDS)('cleanup job on the %s backend, two instances', (backend) => {
  let replicas: SampleApp[] = [];
  /** When the first instance started: its scheduler may fire from then on. */
  let startedAt = 0;

  beforeAll(async () => {
    startedAt = Date.now();
    replicas = await startReplicas(2, {
      env: { ...backendEnv(backend), SHERLOCK_NAMESPACE: uniqueNamespace(`e2e-cron-${backend}`) },
    });
  });

  afterAll(async () => {
    await closeAll(replicas);
  });

  it('runs once per tick, on one instance, and is skipped on the other', async () => {
    await new Promise((resolve) => setTimeout(resolve, OBSERVE_MS));
    const stats = await Promise.all(
      replicas.map(
        async ({ url }) =>
          (await request(url).get('/jobs/cleanup').expect(200)).body as CleanupStats,
      ),
    );
    const elapsedSeconds = (Date.now() - startedAt) / 1000;

    // Both schedulers are firing every second: the job not running on one is the lock's doing.
    for (const { app } of replicas) {
      const lastTick = app.get(SchedulerRegistry).getCronJob('cleanup').lastDate();
      expect(Date.now() - (lastTick?.getTime() ?? 0)).toBeLessThan(2_500);
    }

    const runs = stats.reduce((sum, { runs }) => sum + runs, 0);
    // About one run per elapsed second in total (not two): wide margins for a loaded machine.
    expect(runs).toBeGreaterThanOrEqual(2);
    expect(runs).toBeLessThanOrEqual(Math.ceil(elapsedSeconds) + 1);

    // Never both instances in the same tick: the two schedulers of one tick fire within a few
    // milliseconds of each other, so two runs of one tick would be that close.
    const times = stats
      .flatMap(({ recent }) => recent.map((iso) => Date.parse(iso)))
      .sort((x, y) => x - y);
    expect(times).toHaveLength(runs);
    for (let i = 1; i < times.length; i++) {
      expect(times[i]! - times[i - 1]!).toBeGreaterThan(250);
    }
  });
});
