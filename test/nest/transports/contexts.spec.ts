/**
 * Where nothing answers a client, nothing maps: a lock error in an @OnEvent handler reaches the
 * event emitter as the lock error itself (logged by it by default, or the rejection of
 * `emitAsync` with `suppressErrors: false`), not an HttpException.
 */
import { Injectable } from '@nestjs/common';
import { EventEmitter2, EventEmitterModule, OnEvent } from '@nestjs/event-emitter';
import { Test } from '@nestjs/testing';
import { LockBusyError } from 'nestjs-sherlock';
import { afterEach, describe, expect, it } from 'vitest';

import { CapturingLogger } from '../helpers.js';
import { holdJob, jobId, Jobs, sherlockModules } from './fixtures.js';

@Injectable()
class JobListener {
  @OnEvent('job.logged')
  async logged(id: string) {
    await this.jobs.run(id);
  }

  @OnEvent('job.thrown', { suppressErrors: false })
  async thrown(id: string) {
    await this.jobs.run(id);
  }

  constructor(private readonly jobs: Jobs) {}
}

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((app) => app.close()));
});

async function start() {
  const moduleRef = await Test.createTestingModule({
    imports: [...(await sherlockModules()), EventEmitterModule.forRoot()],
    providers: [Jobs, JobListener],
  }).compile();
  const app = moduleRef.createNestApplication();
  const logger = new CapturingLogger();
  app.useLogger(logger);
  open.push(app);
  await app.init();
  return { app, logger, events: app.get(EventEmitter2) };
}

describe('an @OnEvent handler whose lock is busy', () => {
  it('the emitter logs the lock error as it is (default suppressErrors)', async () => {
    const { app, logger, events } = await start();
    const id = jobId();
    await holdJob(app, id);
    await events.emitAsync('job.logged', id);
    const errors = logger.entries.filter((entry) => entry.level === 'error');
    expect(errors.map((entry) => entry.message)).toContain(new LockBusyError(`job:${id}`).message);
  });

  it('with suppressErrors: false, emitAsync rejects with the LockBusyError itself', async () => {
    const { app, events } = await start();
    const id = jobId();
    await holdJob(app, id);
    const error: unknown = await events.emitAsync('job.thrown', id).then(
      () => expect.unreachable('expected a rejection'),
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(LockBusyError);
    expect((error as LockBusyError).lockName).toBe(`job:${id}`);
  });
});
