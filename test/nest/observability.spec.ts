/**
 * The Nest side of observability: lock events reaching `@nestjs/event-emitter` when its module is
 * registered (found at run time), debug logs a person tracing a stuck job can read, the warning
 * for the memory backend in production, and `SherlockHealthIndicator` under `@nestjs/terminus`
 * (up on a real server with a busy lock, down with the reason when nothing answers).
 */
import { Injectable } from '@nestjs/common';
import { EventEmitterModule, OnEvent } from '@nestjs/event-emitter';
import { HealthCheckService, TerminusModule } from '@nestjs/terminus';
import {
  LockService,
  type SherlockEmittedEvent,
  SherlockHealthIndicator,
  SherlockModule,
} from 'nestjs-sherlock';
import { describe, expect, it } from 'vitest';
import { getFreePort } from '../support/servers.js';
import { backendOptions, CapturingLogger, uniqueName, useApps, waitFor } from './helpers.js';

const apps = useApps();

@Injectable()
class Listener {
  readonly events: SherlockEmittedEvent[] = [];

  @OnEvent('sherlock.*')
  onLockEvent(event: SherlockEmittedEvent): void {
    this.events.push(event);
  }
}

describe('lock events in a Nest application', () => {
  it('reach @nestjs/event-emitter as sherlock.<type>, with the registration', async () => {
    const app = await apps.start({
      imports: [
        EventEmitterModule.forRoot({ wildcard: true }),
        SherlockModule.forRoot({ ...backendOptions('redis'), isGlobal: true }),
      ],
      providers: [Listener],
    });
    const locks = app.get(LockService);
    const name = uniqueName('nest-events');
    await locks.run(name, async () => {
      expect(await locks.tryAcquire(name)).toBeNull();
    });
    const { events } = app.get(Listener);
    await waitFor(() => events.length >= 3, { what: 'three forwarded events' });
    expect(events.map((e) => e.type)).toEqual(['acquired', 'busy', 'released']);
    for (const event of events) {
      expect(event).toMatchObject({ name, backend: 'redis', registration: 'default' });
    }
    expect(events[0]?.fencingToken).toMatch(/^\d+$/);
  });

  it('are logged at debug: waiting, acquired after how long, released after how long', async () => {
    const logger = new CapturingLogger();
    const app = await apps.start(
      { imports: [SherlockModule.forRoot({ ...backendOptions('redis'), isGlobal: true })] },
      { logger },
    );
    const locks = app.get(LockService);
    const name = uniqueName('nest-logs');
    const holder = await locks.acquire(name);
    const waiting = locks.run(name, async () => 'done', { timeout: 10_000 });
    await waitFor(() => logger.from('SherlockModule').some((e) => e.message.startsWith('Waiting')));
    await holder.release();
    expect(await waiting).toBe('done');
    const debug = logger
      .from('SherlockModule')
      .filter((e) => e.level === 'debug')
      .map((e) => e.message);
    expect(debug[0]).toMatch(
      new RegExp(`^Acquired lock '${name}' \\(redis\\) after waiting \\d+ ms, fencing token \\d+$`),
    );
    expect(debug[1]).toMatch(
      new RegExp(`^Waiting for lock '${name}' \\(redis\\): held by another owner`),
    );
    expect(debug.filter((m) => m.startsWith(`Released lock '${name}'`))).toHaveLength(2);
    expect(debug.filter((m) => m.startsWith(`Acquired lock '${name}'`))).toHaveLength(2);
  });
});

describe('the memory backend in production', () => {
  it('warns at bootstrap with NODE_ENV=production, not otherwise', async () => {
    const saved = process.env['NODE_ENV'];
    try {
      process.env['NODE_ENV'] = 'production';
      const logger = new CapturingLogger();
      await apps.start({ imports: [SherlockModule.forRoot({ backend: 'memory' })] }, { logger });
      const warnings = logger.from('SherlockModule').filter((e) => e.level === 'warn');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]?.message).toContain(
        "registration 'default' uses the memory backend with NODE_ENV=production",
      );
      const onRedis = new CapturingLogger();
      await apps.start(
        { imports: [SherlockModule.forRoot(backendOptions('redis'))] },
        { logger: onRedis },
      );
      expect(onRedis.from('SherlockModule').filter((e) => e.level === 'warn')).toEqual([]);
      process.env['NODE_ENV'] = 'test';
      const inTest = new CapturingLogger();
      await apps.start(
        { imports: [SherlockModule.forRoot({ backend: 'memory' })] },
        { logger: inTest },
      );
      expect(inTest.from('SherlockModule').filter((e) => e.level === 'warn')).toEqual([]);
    } finally {
      process.env['NODE_ENV'] = saved;
    }
  });
});

describe('SherlockHealthIndicator', () => {
  it('is up under terminus on a real server, with a lock held (busy is healthy)', async () => {
    const app = await apps.start({
      imports: [
        TerminusModule,
        SherlockModule.forRoot({ ...backendOptions('redis'), isGlobal: true }),
        SherlockModule.forRoot({ ...backendOptions('etcd'), name: 'audit', isGlobal: true }),
      ],
    });
    const locks = app.get(LockService);
    const held = await locks.acquire(uniqueName('health'));
    const health = app.get(HealthCheckService);
    const indicator = app.get(SherlockHealthIndicator);
    const result = await health.check([
      () => indicator.isHealthy('locks', { timeout: 2_000 }),
      () => indicator.isHealthy('audit-locks', { registration: 'audit' }),
    ]);
    await held.release();
    expect(result.status).toBe('ok');
    expect(result.info?.['locks']).toMatchObject({
      status: 'up',
      backend: 'redis',
      registration: 'default',
    });
    expect(result.info?.['audit-locks']).toMatchObject({ status: 'up', backend: 'etcd' });
  });

  it('is down with the reason when the server does not answer; terminus answers 503', async () => {
    const port = await getFreePort();
    const app = await apps.start({
      imports: [
        TerminusModule,
        SherlockModule.forRoot({
          backend: 'redis',
          connection: `redis://127.0.0.1:${port}`,
          isGlobal: true,
        }),
      ],
    });
    const indicator = app.get(SherlockHealthIndicator);
    const down = await indicator.isHealthy('locks', { timeout: 1_000 });
    expect(down['locks']?.status).toBe('down');
    expect(down['locks']?.reason).toEqual(expect.any(String));
    await expect(
      app.get(HealthCheckService).check([() => indicator.isHealthy('locks', { timeout: 1_000 })]),
    ).rejects.toMatchObject({ status: 503 });
    await expect(indicator.isHealthy('x', { registration: 'nope' })).rejects.toThrow(
      "no SherlockModule registration 'nope'",
    );
  });
});
