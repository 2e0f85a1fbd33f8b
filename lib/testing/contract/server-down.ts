/**
 * The server-down contract (given `deadClient`): a lock whose client points at a port where
 * nothing listens fails within its deadlines with the driver's (or the deadline's) error as
 * cause, and never reports the lock as held.
 */
import {
  type BaseLock,
  type BaseLockOptions,
  LockBackendError,
  LockError,
  LockReleaseError,
  LockTimeoutError,
} from '../../sherlock.js';
import { expect } from '../expect.js';
import { getFreePort, rejectsWith, uniqueName } from '../helpers.js';
import { type Runner, type SubjectInfo, useCleanups } from '../subject.js';

const OPERATION_TIMEOUT_MS = 1_000;
const BLOCKING_TIMEOUT_MS = 1_500;
/** Slack on top of the deadlines (kept below the lock's default 5 s operationTimeout). */
const MARGIN_MS = 3_000;

export function serverDownContract(runner: Runner, fixture: SubjectInfo): void {
  const { it } = runner;
  const { subject } = fixture;
  if (!subject.deadClient) return;
  const deadClientOf = subject.deadClient.bind(subject);
  const onTestFinished = useCleanups(runner);

  /** A lock (with operationTimeout 1 s) whose client talks to a port nothing listens on. */
  async function deadLock(options: BaseLockOptions = {}): Promise<BaseLock> {
    const client = deadClientOf(await getFreePort());
    // ioredis reports every failed reconnection as an 'error' event (printed when unheard); its
    // client mixes EventEmitter in rather than extending it, hence no instanceof.
    const emitter = client as { on?: (event: string, listener: () => void) => unknown };
    if (typeof emitter.on === 'function') emitter.on('error', () => undefined);
    onTestFinished(() => subject.closeClient(client));
    return new fixture.LockClass(uniqueName(), {
      client,
      operationTimeout: OPERATION_TIMEOUT_MS,
      ...options,
    });
  }

  it('acquire(false) rejects with LockBackendError within operationTimeout, the driver error as cause', async () => {
    const lock = await deadLock();
    const { error, ms } = await rejectsWith(LockBackendError, () => lock.acquire(false));
    expect(error).toBeInstanceOf(LockError);
    expect(error.operation).toBe('acquire');
    expect(error.lockName).toBe(lock.name);
    expect(error.cause).toBeDefined();
    expect(error.message).toContain(`Backend error during acquire of lock '${lock.name}'`);
    expect(ms).toBeLessThan(OPERATION_TIMEOUT_MS + MARGIN_MS);
    expect(lock.isAcquired).toBe(false);
  });

  it('locked() rejects with LockBackendError within operationTimeout, the driver error as cause', async () => {
    const lock = await deadLock();
    const { error, ms } = await rejectsWith(LockBackendError, () => lock.locked());
    expect(error.operation).toBe('locked');
    expect(error.cause).toBeDefined();
    expect(ms).toBeLessThan(OPERATION_TIMEOUT_MS + MARGIN_MS);
  });

  it("release() of a never-acquired lock is 'not-acquired' (decided without the server)", async () => {
    const lock = await deadLock();
    const { error, ms } = await rejectsWith(LockReleaseError, () => lock.release());
    expect(error.reason).toBe('not-acquired');
    expect(ms).toBeLessThan(OPERATION_TIMEOUT_MS);
  });

  it(`a blocking acquire with timeout ${BLOCKING_TIMEOUT_MS} ms rejects with LockBackendError (not LockTimeoutError, which means "busy"), the last error as cause`, async () => {
    const lock = await deadLock({ timeout: BLOCKING_TIMEOUT_MS, retryInterval: 100 });
    const { error, ms } = await rejectsWith(LockBackendError, () => lock.acquire());
    expect(error).not.toBeInstanceOf(LockTimeoutError);
    expect(error.operation).toBe('acquire');
    expect(error.cause).toBeDefined();
    expect(error.cause).not.toBeInstanceOf(LockError);
    // The last attempt may start just before the timeout and take up to operationTimeout.
    expect(ms).toBeGreaterThanOrEqual(BLOCKING_TIMEOUT_MS);
    expect(ms).toBeLessThan(BLOCKING_TIMEOUT_MS + OPERATION_TIMEOUT_MS + MARGIN_MS);
    expect(lock.isAcquired).toBe(false);
  });
}
