/**
 * The default mapping of lock errors (lib/nest/lock-error-mapping.ts), error by error: code,
 * HTTP status, lock and Retry-After seconds; what it leaves alone; and the validation of the
 * `errorMapping` module option.
 */
import { describe, expect, it } from 'vitest';
import {
  DriverMissingError,
  LockAbortedError,
  LockBackendError,
  LockBusyError,
  LockError,
  LockLostError,
  LockNotHeldError,
  LockTimeoutError,
  MultiLockError,
  UnsupportedFeatureError,
} from '../../lib/core/errors/index.js';
import {
  describeLockError,
  httpExceptionOf,
  LockGraphQLError,
  resolveErrorMapping,
} from '../../lib/nest/lock-error-mapping.js';

describe('describeLockError', () => {
  it('LockBusyError: 409 LOCK_BUSY, Retry-After = retryAfter in whole seconds, rounded up', () => {
    expect(describeLockError(new LockBusyError('a', { retryAfter: 20_001 }))).toEqual({
      code: 'LOCK_BUSY',
      status: 409,
      lock: 'a',
      message: "Lock 'a' is held by another request; try again later",
      retryAfter: 21,
    });
    expect(describeLockError(new LockBusyError('a', { retryAfter: 1 }))?.retryAfter).toBe(1);
    expect(describeLockError(new LockBusyError('a', { retryAfter: 0 }))?.retryAfter).toBe(1);
  });

  it('an unknown retryAfter stays unknown (no Retry-After)', () => {
    expect(describeLockError(new LockBusyError('a'))?.retryAfter).toBeUndefined();
    expect(describeLockError(new LockTimeoutError('a', 100))?.retryAfter).toBeUndefined();
  });

  it('LockTimeoutError: 409 LOCK_TIMEOUT; a multi-lock names the busy member', () => {
    const error = new LockTimeoutError('a, b', 300, { member: 'b', retryAfter: 4_000 });
    expect(describeLockError(error)).toMatchObject({
      code: 'LOCK_TIMEOUT',
      status: 409,
      lock: 'b',
      retryAfter: 4,
    });
  });

  it('LockBackendError: 503 LOCK_BACKEND_UNAVAILABLE, Retry-After = unavailableRetryAfter', () => {
    const error = new LockBackendError('a', 'acquire', {
      cause: new Error('ECONNREFUSED 10.0.0.1'),
    });
    expect(describeLockError(error)).toEqual({
      code: 'LOCK_BACKEND_UNAVAILABLE',
      status: 503,
      lock: 'a',
      message: "The lock server could not be reached for lock 'a'; try again later",
      retryAfter: 5,
    });
    expect(describeLockError(error, 12_500)?.retryAfter).toBe(13);
  });

  it("a lost lock: 500 LOCK_LOST (LockLostError, 'not-owned', a multi-lock with such a member)", () => {
    expect(describeLockError(new LockLostError('a', 'taken'))).toMatchObject({
      code: 'LOCK_LOST',
      status: 500,
      lock: 'a',
      retryAfter: undefined,
    });
    expect(describeLockError(new LockNotHeldError('a', 'not-owned', 'extend'))?.code).toBe(
      'LOCK_LOST',
    );
    const multi = new MultiLockError(
      'a, b',
      'release',
      [{ name: 'b', error: new LockNotHeldError('b', 'not-owned') }],
      ['a'],
    );
    expect(describeLockError(multi)).toMatchObject({ code: 'LOCK_LOST', lock: 'b' });
  });

  it('a multi-lock release that failed only on the server: 503', () => {
    const cause = { cause: new Error('down') };
    const multi = new MultiLockError(
      'a, b',
      'release',
      [
        { name: 'a', error: new LockBackendError('a', 'release', cause) },
        { name: 'b', error: new LockBackendError('b', 'release', cause) },
      ],
      [],
    );
    expect(describeLockError(multi)).toMatchObject({ code: 'LOCK_BACKEND_UNAVAILABLE', lock: 'a' });
  });

  it('leaves the rest alone: misuse, abort, missing driver, unsupported feature, not-acquired, other errors', () => {
    for (const error of [
      new LockError('misuse', 'a'),
      new LockAbortedError('a', { cause: 'stop' }),
      new DriverMissingError('redis', 'ioredis'),
      new UnsupportedFeatureError('a', 'memcached', 'semaphore', 'no'),
      new LockNotHeldError('a', 'not-acquired'),
      new Error('boom'),
      'a string',
    ]) {
      expect(describeLockError(error)).toBeUndefined();
    }
  });
});

describe('the transport errors', () => {
  it('HTTP: an HttpException with the status, the code and the lock error as cause', () => {
    const error = new LockBusyError('a', { retryAfter: 1_500 });
    const description = describeLockError(error);
    if (!description) throw new Error('expected a description');
    const exception = httpExceptionOf(description, error);
    expect(exception.getStatus()).toBe(409);
    expect(exception.getResponse()).toEqual({
      statusCode: 409,
      error: 'Conflict',
      code: 'LOCK_BUSY',
      lock: 'a',
      message: description.message,
      retryAfter: 2,
    });
    expect(exception.cause).toBe(error);
  });

  it('GraphQL: extensions { code, lock, retryAfter }, retryAfter left out when unknown', () => {
    const description = describeLockError(new LockBusyError('a'));
    if (!description) throw new Error('expected a description');
    expect(new LockGraphQLError(description).extensions).toEqual({ code: 'LOCK_BUSY', lock: 'a' });
  });
});

describe('the errorMapping option', () => {
  it('defaults: on, no custom map, 5 s for a server that is down', () => {
    expect(resolveErrorMapping(undefined)).toEqual({
      enabled: true,
      map: undefined,
      unavailableRetryAfter: 5_000,
    });
    expect(resolveErrorMapping(false).enabled).toBe(false);
    const map = () => undefined;
    expect(resolveErrorMapping(map).map).toBe(map);
    expect(resolveErrorMapping({ map, unavailableRetryAfter: 1_000 })).toEqual({
      enabled: true,
      map,
      unavailableRetryAfter: 1_000,
    });
  });

  it.each([
    [true, TypeError, "Invalid option 'errorMapping': got true, expected false, a function"],
    ['off', TypeError, 'Invalid option \'errorMapping\': got "off"'],
    [[], TypeError, "Invalid option 'errorMapping'"],
    [{ map: 1 }, TypeError, "Invalid option 'errorMapping.map': got 1"],
    [
      { unavailableRetryAfter: '5s' },
      TypeError,
      "Invalid option 'errorMapping.unavailableRetryAfter'",
    ],
    [
      { unavailableRetryAfter: 0 },
      RangeError,
      "Invalid option 'errorMapping.unavailableRetryAfter': got 0",
    ],
    [{ other: 1 }, TypeError, "Unknown option 'other' for SherlockModule option 'errorMapping'"],
  ])('rejects %j with a %o naming it', (value, type, message) => {
    expect(() => resolveErrorMapping(value)).toThrow(type);
    expect(() => resolveErrorMapping(value)).toThrow(message);
  });
});
