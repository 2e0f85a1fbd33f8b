/**
 * @Locked keeps the metadata of the decorators stacked with it, whichever side of it they are
 * on: @Cron jobs still run (under the lock), @OnEvent handlers still fire, routes still route.
 */
import { Controller, Get, Injectable, Param } from '@nestjs/common';
import { EventEmitter2, EventEmitterModule, OnEvent } from '@nestjs/event-emitter';
import { Cron, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import { currentLock, Locked, LockService, SherlockModule } from 'nestjs-sherlock';
import request from 'supertest';
import { describe, expect, it } from 'vitest';

import { uniqueName, useApps, waitFor } from './helpers.js';

const apps = useApps();
const NAMESPACE = uniqueName('stacking');
const sherlock = () => SherlockModule.forRoot({ backend: 'memory', namespace: NAMESPACE });

interface Run {
  /** The lock held while the method ran (currentLock()). */
  readonly lock: string | undefined;
  /** Whether the lock was held on the backend while the method ran. */
  readonly held: boolean;
}

/** Records one run of a method: the lock it runs under, as seen from inside. */
async function recordRun(locks: LockService, runs: Run[]): Promise<void> {
  const lock = currentLock()?.name;
  runs.push({ lock, held: lock === undefined ? false : await locks.isLocked(lock) });
}

@Injectable()
class CronJobs {
  readonly above: Run[] = [];
  readonly below: Run[] = [];

  constructor(private readonly locks: LockService) {}

  @Cron('* * * * * *', { name: 'cron-above-locked' })
  @Locked('cron-above', { wait: false, onBusy: 'skip' })
  async cronAbove(): Promise<void> {
    await recordRun(this.locks, this.above);
  }

  @Locked('cron-below', { wait: false, onBusy: 'skip' })
  @Cron('* * * * * *', { name: 'cron-below-locked' })
  async cronBelow(): Promise<void> {
    await recordRun(this.locks, this.below);
  }
}

@Injectable()
class Listeners {
  readonly above: Run[] = [];
  readonly below: Run[] = [];

  constructor(private readonly locks: LockService) {}

  @OnEvent('thing.happened')
  @Locked('event-above')
  async onThingAbove(): Promise<void> {
    await recordRun(this.locks, this.above);
  }

  @Locked('event-below')
  @OnEvent('thing.happened')
  async onThingBelow(): Promise<void> {
    await recordRun(this.locks, this.below);
  }
}

@Controller('stacked')
class StackedController {
  @Get('above/:id')
  @Locked((id: string) => `stacked-above:${id}`)
  async above(@Param('id') id: string): Promise<{ id: string; lock?: string }> {
    return { id, lock: currentLock()?.name };
  }

  @Locked((id: string) => `stacked-below:${id}`)
  @Get('below/:id')
  async below(@Param('id') id: string): Promise<{ id: string; lock?: string }> {
    return { id, lock: currentLock()?.name };
  }
}

describe('decorators stacked with @Locked', () => {
  it('@Cron above and below: the jobs are registered and run under their locks', async () => {
    const app = await apps.start({
      imports: [ScheduleModule.forRoot(), sherlock()],
      providers: [CronJobs],
    });
    const jobs = app.get(SchedulerRegistry).getCronJobs();
    expect([...jobs.keys()].sort()).toEqual(['cron-above-locked', 'cron-below-locked']);

    const cron = app.get(CronJobs);
    await waitFor(() => cron.above.length >= 2 && cron.below.length >= 2, {
      timeout: 6_000,
      what: 'two runs of each cron job',
    });
    expect(cron.above.slice(0, 2)).toEqual([
      { lock: 'cron-above', held: true },
      { lock: 'cron-above', held: true },
    ]);
    expect(cron.below.slice(0, 2)).toEqual([
      { lock: 'cron-below', held: true },
      { lock: 'cron-below', held: true },
    ]);
  });

  it('@OnEvent above and below: emitting the event runs both handlers under their locks', async () => {
    const app = await apps.start({
      imports: [EventEmitterModule.forRoot(), sherlock()],
      providers: [Listeners],
    });
    await app.get(EventEmitter2).emitAsync('thing.happened', { id: 1 });
    const listeners = app.get(Listeners);
    expect(listeners.above).toEqual([{ lock: 'event-above', held: true }]);
    expect(listeners.below).toEqual([{ lock: 'event-below', held: true }]);
  });

  it('@Get above and below: both routes still answer', async () => {
    const app = await apps.start(
      { imports: [sherlock()], controllers: [StackedController] },
      { listen: true },
    );
    const server = app.getHttpServer();
    const above = await request(server).get('/stacked/above/7');
    expect(above.status).toBe(200);
    expect(above.body).toEqual({ id: '7', lock: 'stacked-above:7' });
    const below = await request(server).get('/stacked/below/8');
    expect(below.status).toBe(200);
    expect(below.body).toEqual({ id: '8', lock: 'stacked-below:8' });
  });
});
