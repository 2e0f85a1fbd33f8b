/**
 * Leader election in Nest, on the real Redis server: two "replicas" (two Nest applications, each
 * with its own SherlockModule client) run a `@LeaderOnly` `@Cron`-decorated job; only the leader
 * runs it, the other skips (resolving undefined); `LeaderService` says who leads and emits
 * elected / lost; closing the leader's application resigns, and the other replica leads at once.
 * Bad options and a backend without elections fail the start.
 */
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Cron, CronExpression } from '@nestjs/schedule';
import {
  InjectLeaderService,
  LeaderElectionModule,
  LeaderOnly,
  LeaderService,
  SherlockModule,
  UnsupportedFeatureError,
} from 'nestjs-sherlock';
import { afterEach, describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { memcachedServerList, redisUrl } from '../support/env.js';
import { delay, rejectionOf, timed, waitFor } from '../support/helpers.js';

const HANDOFF_LIMIT_MS = 1_200;

@Injectable()
class Jobs {
  runs = 0;
  constructor(@InjectLeaderService() readonly leader: LeaderService) {}

  @LeaderOnly()
  @Cron(CronExpression.EVERY_HOUR, { name: 'purge' })
  async purge(): Promise<string> {
    this.runs += 1;
    return `purged (term ${this.leader.leadership?.term})`;
  }
}

async function replica(election: string, options: Record<string, unknown> = {}) {
  @Module({
    imports: [
      SherlockModule.forRoot({ backend: 'redis', connection: redisUrl(), isGlobal: true }),
      LeaderElectionModule.forRoot({
        election,
        retryInterval: 10_000,
        ...options,
        isGlobal: true,
      }),
    ],
    providers: [Jobs],
  })
  class AppModule {}
  const moduleRef = await Test.createTestingModule({ imports: [AppModule] }).compile();
  const app = moduleRef.createNestApplication();
  await app.init();
  return app;
}

describe('LeaderElectionModule, LeaderService and @LeaderOnly (redis)', () => {
  let apps: INestApplicationContext[] = [];
  afterEach(async () => {
    await Promise.allSettled(apps.map((app) => app.close()));
    apps = [];
  });

  it('keeps @Cron metadata on either side, and refuses a non-method or a bad election name', () => {
    expect(Reflect.getMetadataKeys(Jobs.prototype.purge)).toEqual(
      expect.arrayContaining(['sherlock:leader-only']),
    );
    expect(Reflect.getMetadataKeys(Jobs.prototype.purge).length).toBeGreaterThan(1);
    expect(() => LeaderOnly('')).toThrow(TypeError);
  });

  it('one replica runs the job, the other skips it (undefined); closing the leader hands over at once', async () => {
    const election = uniqueName('nest-leader');
    const a = await replica(election);
    apps.push(a);
    const jobsA = a.get(Jobs);
    await waitFor(() => jobsA.leader.isLeader());
    const b = await replica(election);
    apps.push(b);
    const jobsB = b.get(Jobs);
    const elected: string[] = [];
    jobsB.leader.on('elected', ({ term }) => elected.push(term));
    await delay(300);
    expect(jobsB.leader.isLeader()).toBe(false);

    const termA = jobsA.leader.leadership?.term;
    expect(await jobsA.purge()).toBe(`purged (term ${termA})`);
    expect(await jobsB.purge()).toBeUndefined();
    expect([jobsA.runs, jobsB.runs]).toEqual([1, 0]);
    expect((await jobsB.leader.leader())?.pid).toBe(process.pid);
    expect((await jobsB.leader.leader())?.term).toBe(termA);

    // A rolling deploy: the leader shuts down; it resigns, the other leads without waiting for
    // the lease (15 s) or its retryInterval (10 s).
    const { ms } = await timed(async () => {
      await a.close();
      await waitFor(() => jobsB.leader.isLeader(), { timeout: 5_000 });
    });
    expect(ms).toBeLessThan(HANDOFF_LIMIT_MS);
    expect(elected).toHaveLength(1);
    expect(BigInt(elected[0] ?? '0')).toBeGreaterThan(BigInt(termA ?? '0'));
    expect(await jobsB.purge()).toMatch(/^purged/);
    expect(jobsB.runs).toBe(1);
  });

  it('campaign: false does not campaign; campaign() and resign() are the caller’s', async () => {
    const election = uniqueName('nest-manual');
    const app = await replica(election, { campaign: false });
    apps.push(app);
    const jobs = app.get(Jobs);
    await delay(200);
    expect(jobs.leader.isLeader()).toBe(false);
    expect(await jobs.purge()).toBeUndefined();
    const { term } = await jobs.leader.campaign();
    expect(await jobs.purge()).toBe(`purged (term ${term})`);
    expect(await jobs.leader.resign()).toBe(true);
    expect(await jobs.purge()).toBeUndefined();
  });

  it('bad options fail the start with an error naming the option; memcached refuses elections at start', async () => {
    const bad = await rejectionOf(
      replica(uniqueName('nest-bad'), { expire: 3_000, renewEvery: 2_000 }),
    );
    expect(bad).toBeInstanceOf(RangeError);
    expect(bad.message).toMatch(/'renewEvery'.*2000.*at most expire \/ 2 \(1500 ms/);
    expect(() => LeaderElectionModule.forRoot({ campaign: 'yes' } as never)).toThrow(
      /Invalid option 'campaign'/,
    );
    expect(() => LeaderElectionModule.forRoot({ elction: 'x' } as never)).toThrow(
      /Unknown option 'elction'/,
    );

    @Module({
      imports: [
        SherlockModule.forRoot({
          backend: 'memcached',
          connection: memcachedServerList(),
          isGlobal: true,
        }),
        LeaderElectionModule.forRoot({ isGlobal: true }),
      ],
    })
    class MemcachedApp {}
    const refused = await rejectionOf(
      Test.createTestingModule({ imports: [MemcachedApp] })
        .compile()
        .then((ref) => ref.createNestApplication().init()),
    );
    expect(refused).toBeInstanceOf(UnsupportedFeatureError);
  });

  it('@LeaderOnly without a LeaderElectionModule fails at the call with a message saying what to import', async () => {
    @Injectable()
    class Orphan {
      @LeaderOnly('reports')
      async run() {
        return 1;
      }
    }
    @Module({
      imports: [SherlockModule.forRoot({ backend: 'memory', isGlobal: true })],
      providers: [Orphan],
    })
    class OrphanApp {}
    const ref = await Test.createTestingModule({ imports: [OrphanApp] }).compile();
    const app = await ref.createNestApplication().init();
    apps.push(app);
    const error = await rejectionOf(app.get(Orphan).run());
    expect(error.message).toMatch(
      /@LeaderOnly on Orphan.run found no LeaderService named 'reports': import LeaderElectionModule.forRoot\(\{ name: 'reports'/,
    );
  });
});
