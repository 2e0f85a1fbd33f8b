import {
  ConflictException,
  type ExecutionContext,
  HttpException,
  InternalServerErrorException,
  ServiceUnavailableException,
} from '@nestjs/common';
import { messages } from '../core/messages.js';
import { checkDuration, checkKeys } from '../core/options.js';
import {
  LockBackendError,
  LockBusyError,
  LockError,
  LockLostError,
  LockNotHeldError,
  LockTimeoutError,
  MultiLockError,
} from '../sherlock.js';

/** The code a mapped lock error carries on every transport. */
export type LockErrorCode = 'LOCK_BUSY' | 'LOCK_TIMEOUT' | 'LOCK_LOST' | 'LOCK_BACKEND_UNAVAILABLE';

/** What the default mapping says of a lock error, whatever the transport. */
export interface LockErrorDescription {
  readonly code: LockErrorCode;
  /** The HTTP status: 409 (busy, timeout), 500 (lost), 503 (backend unavailable). */
  readonly status: 409 | 500 | 503;
  /** A message for the client (it names the lock, never the server's address). */
  readonly message: string;
  /** The lock's name; for several locks taken together, the member that failed. */
  readonly lock: string;
  /**
   * In how many whole seconds (rounded up, at least 1) a retry makes sense: the holder's
   * remaining time to live (busy, timeout), `unavailableRetryAfter` (backend unavailable);
   * `undefined` when unknown (a backend that does not report the holder's TTL) or for a lost lock.
   */
  readonly retryAfter: number | undefined;
}

/** What a custom mapping gets besides the error. */
export interface LockErrorContext {
  /** Nest's context type: `'http'`, `'graphql'`, `'rpc'`, `'ws'`. */
  readonly transport: string;
  /** The execution context of the handler that failed (its request, response, client...). */
  readonly execution: ExecutionContext;
  /** What the default mapping makes of this error; `undefined` when it leaves it alone. */
  readonly description: LockErrorDescription | undefined;
}

/**
 * A custom mapping: gets every `LockError` a handler throws (not other errors) and returns what
 * to throw instead, or `undefined` to let the default mapping answer (return `error` itself to
 * leave it unmapped).
 */
export type LockErrorMapper = (error: LockError, context: LockErrorContext) => unknown;

/** The object form of the `errorMapping` module option. */
export interface LockErrorMappingOptions {
  /** A custom mapping, tried first. */
  map?: LockErrorMapper;
  /** The `Retry-After` of a backend that cannot be reached, in ms (rounded up to seconds). Default 5 000. */
  unavailableRetryAfter?: number;
}

/**
 * The `errorMapping` module option: `false` turns the mapping off (lock errors reach Nest's
 * exception handling as they are), a function is a custom mapping, an object sets both.
 */
export type LockErrorMapping = false | LockErrorMapper | LockErrorMappingOptions;

/** `errorMapping` validated, defaults applied. */
export interface ResolvedLockErrorMapping {
  readonly enabled: boolean;
  readonly map: LockErrorMapper | undefined;
  readonly unavailableRetryAfter: number;
}

export const DEFAULT_UNAVAILABLE_RETRY_AFTER = 5_000;

const ALLOWED =
  'false, a function (error, context) => unknown, or { map?, unavailableRetryAfter? }';

/** Validates the `errorMapping` module option (a TypeError / RangeError naming it). */
export function resolveErrorMapping(value: unknown): ResolvedLockErrorMapping {
  if (value === undefined) {
    return {
      enabled: true,
      map: undefined,
      unavailableRetryAfter: DEFAULT_UNAVAILABLE_RETRY_AFTER,
    };
  }
  if (value === false) {
    return {
      enabled: false,
      map: undefined,
      unavailableRetryAfter: DEFAULT_UNAVAILABLE_RETRY_AFTER,
    };
  }
  if (typeof value === 'function') {
    return {
      enabled: true,
      map: value as LockErrorMapper,
      unavailableRetryAfter: DEFAULT_UNAVAILABLE_RETRY_AFTER,
    };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(messages.invalidOption('errorMapping', value, ALLOWED));
  }
  checkKeys(value, "SherlockModule option 'errorMapping'", ['map', 'unavailableRetryAfter']);
  const { map, unavailableRetryAfter } = value;
  if (map !== undefined && typeof map !== 'function') {
    throw new TypeError(
      messages.invalidOption('errorMapping.map', map, 'a function (error, context) => unknown'),
    );
  }
  return {
    enabled: true,
    map: map as LockErrorMapper | undefined,
    unavailableRetryAfter:
      unavailableRetryAfter === undefined
        ? DEFAULT_UNAVAILABLE_RETRY_AFTER
        : checkDuration('errorMapping.unavailableRetryAfter', unavailableRetryAfter, 1),
  };
}

/** Whole seconds, rounded up, at least 1. */
const seconds = (ms: number): number => Math.max(1, Math.ceil(ms / 1000));

const isNotOwned = (error: unknown): boolean =>
  error instanceof LockNotHeldError && error.reason === 'not-owned';

/**
 * What the default mapping makes of `error`: a busy lock (`LockBusyError`, `LockTimeoutError`)
 * is 409 `LOCK_BUSY` / `LOCK_TIMEOUT`; a server that cannot be reached (`LockBackendError`, or a
 * multi-lock release that failed only for that) 503 `LOCK_BACKEND_UNAVAILABLE`; a lock lost
 * while the handler ran (`LockLostError`, or found not owned any more when it was released)
 * 500 `LOCK_LOST`. Anything else, `undefined`: not mapped.
 */
export function describeLockError(
  error: unknown,
  unavailableRetryAfter = DEFAULT_UNAVAILABLE_RETRY_AFTER,
): LockErrorDescription | undefined {
  if (error instanceof LockBusyError || error instanceof LockTimeoutError) {
    const lock = error.member ?? error.lockName;
    const busy = error instanceof LockBusyError;
    return {
      code: busy ? 'LOCK_BUSY' : 'LOCK_TIMEOUT',
      status: 409,
      message: busy
        ? `Lock '${lock}' is held by another request; try again later`
        : `Lock '${lock}' is held by another request: gave up waiting after ${error.timeout} ms; try again later`,
      lock,
      retryAfter: error.retryAfter === undefined ? undefined : seconds(error.retryAfter),
    };
  }
  if (error instanceof LockBackendError) {
    return unavailable(error.lockName, unavailableRetryAfter);
  }
  if (error instanceof LockLostError || isNotOwned(error)) {
    return lost((error as LockError).lockName);
  }
  if (error instanceof MultiLockError) {
    const notOwned = error.failed.find((failure) => isNotOwned(failure.error));
    if (notOwned) return lost(notOwned.name);
    const [first] = error.failed;
    if (first && error.failed.every((failure) => failure.error instanceof LockBackendError)) {
      return unavailable(first.name, unavailableRetryAfter);
    }
  }
  return undefined;
}

function unavailable(lock: string, retryAfterMs: number): LockErrorDescription {
  return {
    code: 'LOCK_BACKEND_UNAVAILABLE',
    status: 503,
    message: `The lock server could not be reached for lock '${lock}'; try again later`,
    lock,
    retryAfter: seconds(retryAfterMs),
  };
}

function lost(lock: string): LockErrorDescription {
  return {
    code: 'LOCK_LOST',
    status: 500,
    message: `Lock '${lock}' was lost while the request ran: its work was stopped or left unprotected`,
    lock,
    retryAfter: undefined,
  };
}

/** The JSON body of the HTTP answer, and the payload of the RPC / WebSocket error. */
export function lockErrorBody(description: LockErrorDescription): {
  code: LockErrorCode;
  message: string;
  lock: string;
  retryAfter?: number;
} {
  const { code, message, lock, retryAfter } = description;
  return { code, message, lock, ...(retryAfter === undefined ? {} : { retryAfter }) };
}

/** The HttpException of the default mapping (409, 503 or 500). */
export function httpExceptionOf(description: LockErrorDescription, cause: unknown): HttpException {
  const Exception =
    description.status === 409
      ? ConflictException
      : description.status === 503
        ? ServiceUnavailableException
        : InternalServerErrorException;
  const error =
    description.status === 409
      ? 'Conflict'
      : description.status === 503
        ? 'Service Unavailable'
        : 'Internal Server Error';
  return new Exception(
    { statusCode: description.status, error, ...lockErrorBody(description) },
    { cause },
  );
}

/**
 * The error of a GraphQL answer: its `extensions` carry `code`, `lock` and `retryAfter`
 * (GraphQL servers copy a thrown error's `extensions` into the response).
 */
export class LockGraphQLError extends Error {
  readonly extensions: {
    code: LockErrorCode;
    lock: string;
    retryAfter?: number;
  };

  constructor(description: LockErrorDescription, options: { cause?: unknown } = {}) {
    super(description.message, options);
    this.name = 'LockGraphQLError';
    const { code, lock, retryAfter } = description;
    this.extensions = {
      code,
      lock,
      ...(retryAfter === undefined ? {} : { retryAfter }),
    };
  }
}
