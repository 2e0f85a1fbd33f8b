/**
 * Helpers of the unit layer: fake timers (including `performance.now()`, the core's clock), a
 * fixed `Math.random`, and a way to watch a promise settle while the test moves the clock.
 */
import { afterEach, beforeEach, expect, vi } from 'vitest';

/** What the fake clock replaces: the core reads `performance.now()` and arms `setTimeout`. */
export const FAKED = [
  'setTimeout',
  'clearTimeout',
  'setInterval',
  'clearInterval',
  'Date',
  'performance',
] as const;

let origin = 0;

/** Fake ms since the test's clock started. */
export const elapsed = (): number => performance.now() - origin;

/** A `performance.now()` time as fake ms since the test's clock started. */
export const sinceStart = (at: number): number => at - origin;

/**
 * Installs fake timers (and `Math.random() === 0.5`, so polling sleeps are 75 % of
 * `retryInterval` and fallback polls 100 % of theirs) around every test of the calling file.
 */
export function useFakeClock(): void {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: [...FAKED] });
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
    origin = performance.now();
  });
  afterEach(() => {
    vi.clearAllTimers();
    vi.useRealTimers();
    vi.restoreAllMocks();
  });
}

/** Moves the fake clock by `ms`, running the timers and the promise jobs they start. */
export async function advance(ms: number): Promise<void> {
  await vi.advanceTimersByTimeAsync(ms);
}

/** Lets pending promise jobs run without moving the clock. */
export async function flush(): Promise<void> {
  await vi.advanceTimersByTimeAsync(0);
}

/** A promise under watch: whether and when (fake ms) it settled, and with what. */
export interface Watched<T> {
  readonly promise: Promise<T>;
  readonly state: 'pending' | 'fulfilled' | 'rejected';
  readonly value: T | undefined;
  readonly error: unknown;
  /** `elapsed()` when it settled. */
  readonly at: number | undefined;
}

/** Watches `promise` (its rejection is handled: read it from `error`). */
export function watch<T>(promise: Promise<T>): Watched<T> {
  const watched: {
    promise: Promise<T>;
    state: Watched<T>['state'];
    value: T | undefined;
    error: unknown;
    at: number | undefined;
  } = { promise, state: 'pending', value: undefined, error: undefined, at: undefined };
  promise.then(
    (value) => {
      watched.state = 'fulfilled';
      watched.value = value;
      watched.at = elapsed();
    },
    (error: unknown) => {
      watched.state = 'rejected';
      watched.error = error;
      watched.at = elapsed();
    },
  );
  return watched;
}

/** Asserts `watched` rejected with an instance of `type`, and returns the error. */
export function rejected<E extends Error>(
  watched: Watched<unknown>,
  type: abstract new (...args: never[]) => E,
): E {
  expect(watched.state).toBe('rejected');
  expect(watched.error).toBeInstanceOf(type);
  return watched.error as E;
}

/** The error `promise` rejects with (fails if it resolves). */
export async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.unreachable('expected a rejection, but the promise resolved'),
    (err: unknown) => err,
  );
}
