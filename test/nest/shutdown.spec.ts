/**
 * app.close() releases the locks a registration still holds (checked on the real servers by
 * another client) and says so through Nest's Logger.
 */
import { Injectable } from '@nestjs/common';
import { Locked, LockService, SherlockModule } from 'nestjs-sherlock';
import { describe, expect, it } from 'vitest';

import {
  ALL_BACKENDS,
  backendOptions,
  CapturingLogger,
  uniqueName,
  useApps,
  useProbe,
} from './helpers.js';

const apps = useApps();

describe.each(ALL_BACKENDS)('shutdown on %s', (backend) => {
  const probe = useProbe(backend);

  it('releases a lock still held at app.close() and logs it', async () => {
    const logger = new CapturingLogger();
    const app = await apps.start(
      { imports: [SherlockModule.forRoot(backendOptions(backend))] },
      { logger },
    );
    const locks = app.get(LockService);
    const name = uniqueName(`forgotten-${backend}`);
    const forgotten = await locks.acquire(name);
    const released = await locks.acquire(uniqueName(`released-${backend}`));
    await released.release();
    expect(await probe.isLocked(name)).toBe(true);

    await apps.close(app);

    expect(await probe.isLocked(name)).toBe(false);
    expect(forgotten.isAcquired).toBe(false);
    // The lock events logged at debug are not what this is about.
    const messages = logger
      .from('SherlockModule')
      .filter((entry) => entry.level !== 'debug')
      .map((entry) => entry.message);
    expect(messages).toEqual([`Released lock '${name}' still held at shutdown`]);
  });
});

describe('shutdown of a lock kept for atLeastFor', () => {
  const probe = useProbe('redis');
  const NAMESPACE = uniqueName('shutdown');

  @Injectable()
  class Reports {
    @Locked('nightly', { atLeastFor: 30_000 })
    async nightly(): Promise<string> {
      return 'sent';
    }
  }

  it('is left to expire on its own (another replica must not rerun the job) and logged', async () => {
    const logger = new CapturingLogger();
    const app = await apps.start(
      {
        imports: [SherlockModule.forRoot({ ...backendOptions('redis'), namespace: NAMESPACE })],
        providers: [Reports],
      },
      { logger },
    );
    expect(await app.get(Reports).nightly()).toBe('sent');
    await apps.close(app);

    expect(await probe.isLocked('nightly', NAMESPACE)).toBe(true);
    // The lock events logged at debug are not what this is about.
    const messages = logger
      .from('SherlockModule')
      .filter((entry) => entry.level !== 'debug')
      .map((entry) => entry.message);
    expect(messages).toEqual([
      "Left lock 'nightly' to expire on its own at shutdown (kept for atLeastFor)",
    ]);
  });
});
