/**
 * The test doubles of `nestjs-sherlock` (`createTestingLockManager`, `createTestingLockService`): a memory-backed
 * manager and `LockService` whose locks a test makes busy (held by "someone else") or lost.
 */
import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  createTestingLockManager,
  createTestingLockService,
  LockLostError,
  Locked,
  LockNotHeldError,
  LockService,
  LockTimeoutError,
} from 'nestjs-sherlock';
import { describe, expect, it } from 'vitest';

@Injectable()
class Reports {
  runs = 0;

  @Locked('reports:daily', { timeout: 200 })
  async build(): Promise<string> {
    this.runs += 1;
    return 'built';
  }
}

describe('createTestingLockManager()', () => {
  it('makeBusy(name): the lock looks held elsewhere until free(name)', async () => {
    const locks = createTestingLockManager({ retryInterval: 20 });
    expect(await locks.makeBusy('job')).toBe(true);
    expect(await locks.makeBusy('job')).toBe(false); // already held
    const lock = locks.lock('job', { timeout: 200 });
    expect(await lock.locked()).toBe(true);
    expect(await lock.acquire(false)).toBe(false);
    await expect(lock.acquire()).rejects.toBeInstanceOf(LockTimeoutError);
    expect(locks.held()).toEqual([]); // "someone else" is not this manager

    const waiting = locks.lock('job', { timeout: 5_000 }).acquire();
    await locks.free('job');
    expect(await waiting).toBe(true);
    await locks.close();
  });

  it('makeBusy() honours a namespace, and another name stays free', async () => {
    const locks = createTestingLockManager({ namespace: 'app' });
    await locks.makeBusy('job', { namespace: 'app' });
    expect(await locks.lock('job').acquire(false)).toBe(false);
    expect(await locks.lock('other').acquire(false)).toBe(true);
    await locks.close();
  });

  it('loseLock(name): every holder of this manager learns it at once; the lock is free for others', async () => {
    const locks = createTestingLockManager({ expire: 60_000 });
    const lock = locks.lock('job');
    const lost: string[] = [];
    locks.on('lost', ({ name, error }) => lost.push(`${name}:${error.reason}`));
    expect(await lock.acquire(false)).toBe(true);
    expect(await locks.loseLock('job')).toBe(1);

    expect(lock.signal.aborted).toBe(true);
    expect(lock.signal.reason).toBeInstanceOf(LockLostError);
    expect((lock.signal.reason as LockLostError).reason).toBe('taken');
    expect(lost).toEqual(['job:taken']);
    await expect(lock.release()).rejects.toBeInstanceOf(LockNotHeldError);
    expect(await locks.lock('job').acquire(false)).toBe(true);
    expect(await locks.loseLock('nobody-holds-this')).toBe(0);
    await locks.close();
  });

  it('two testing managers sharing a store are two processes of one server', async () => {
    const first = createTestingLockManager();
    const second = createTestingLockManager({ store: first.store });
    expect(await first.lock('shared').acquire(false)).toBe(true);
    expect(await second.lock('shared').acquire(false)).toBe(false);
    await first.close();
    await second.close();
  });
});

describe('createTestingLockService()', () => {
  it('stands in for the module in a Nest test: @Locked runs, is refused while busy, runs again once free', async () => {
    const locks = createTestingLockService();
    const moduleRef = await Test.createTestingModule({
      providers: [Reports, { provide: LockService, useValue: locks }],
    }).compile();
    const reports = moduleRef.get(Reports);

    expect(await reports.build()).toBe('built');
    await locks.makeBusy('reports:daily');
    await expect(reports.build()).rejects.toBeInstanceOf(LockTimeoutError);
    expect(reports.runs).toBe(1);
    await locks.free('reports:daily');
    expect(await reports.build()).toBe('built');
    expect(reports.runs).toBe(2);
    await moduleRef.close();
  });

  it('tryAcquire() sees a busy lock as null; loseLock() inside run() aborts its signal, and run() reports the loss', async () => {
    const locks = createTestingLockService({ expire: 60_000 });
    await locks.makeBusy('a');
    expect(await locks.tryAcquire('a')).toBeNull();
    await locks.free('a');

    let aborted = false;
    const error = await locks
      .run('b', async (lock) => {
        expect(await locks.loseLock('b')).toBe(1);
        aborted = lock.signal.aborted;
        return 'done';
      })
      .then(
        () => undefined,
        (err: unknown) => err,
      );
    expect(aborted).toBe(true);
    expect(error).toBeInstanceOf(LockNotHeldError);
    expect((error as LockNotHeldError).reason).toBe('not-owned');
  });
});
