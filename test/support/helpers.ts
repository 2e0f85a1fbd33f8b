/**
 * The test helpers every layer shares (conformance, features, Nest, hostile, backends): monotonic
 * time and polling, rejections and the typed errors they carry, the loss signal, fencing tokens
 * and gates. The lock and client lifecycles are in locks.ts, raw server access in inspect.ts, the
 * backend table in backends.ts.
 */
import {
  lockEvents,
  type LockLostEvent,
  LockReleaseError,
  type LockReleaseReason,
} from 'nestjs-sherlock';
import { expect } from 'vitest';

import { rejectionOf } from '../../dist/testing/helpers.js';

// The contract kit's own helpers (lib/testing/helpers.ts), from the built package the tests use:
// one copy of each, and the error classes they check are the tests' own.
export {
  abortTime,
  delay,
  expectLost,
  expectStrictlyIncreasing,
  now,
  rejectionOf,
  rejectsWith,
  SLACK_MS,
  throwsWith,
  timed,
  waitFor,
} from '../../dist/testing/helpers.js';

/** Expects `promise` to reject with a LockReleaseError of `reason`. */
export async function expectReleaseError(
  promise: Promise<unknown>,
  reason: LockReleaseReason,
): Promise<LockReleaseError> {
  const error = await rejectionOf(promise);
  expect(error).toBeInstanceOf(LockReleaseError);
  expect((error as LockReleaseError).reason).toBe(reason);
  return error as LockReleaseError;
}

/**
 * The 'lost' events of `lock` from now on, until the test finishes (pass the test context's
 * `onTestFinished`: the global one does not know which of concurrent tests is running).
 */
export function lostEventsOf(
  lock: object,
  onTestFinished: (cleanup: () => void) => void,
): LockLostEvent[] {
  const events: LockLostEvent[] = [];
  const listener = (event: LockLostEvent) => {
    if (event.lock === lock) events.push(event);
  };
  lockEvents.on('lost', listener);
  onTestFinished(() => void lockEvents.off('lost', listener));
  return events;
}

/** A promise opened from outside: `open()` resolves it. */
export interface Gate {
  readonly promise: Promise<void>;
  open(): void;
}

export function gate(): Gate {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}
