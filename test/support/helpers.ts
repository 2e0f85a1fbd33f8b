/**
 * The test helpers every layer shares (conformance, features, Nest, hostile, backends): monotonic
 * time and polling, rejections and the typed errors they carry, the loss signal, fencing tokens
 * and gates. The lock and client lifecycles are in locks.ts, raw server access in inspect.ts, the
 * backend table in backends.ts.
 */
import {
  lockEvents,
  type LockLostEvent,
  LockLostError,
  type LockLostReason,
  LockReleaseError,
  type LockReleaseReason,
} from 'nestjs-sherlock';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { expect } from 'vitest';

export { delay };

/** Generous slack added to every upper time bound: the machine is shared and noisy. */
export const SLACK_MS = 5_000;

/** Monotonic milliseconds. */
export const now = (): number => performance.now();

/** Runs `run` and returns its result and how long it took (monotonic ms). */
export async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const start = now();
  const value = await run();
  return { value, ms: now() - start };
}

/** Polls `check` until it returns true; fails after `timeout` ms, naming `what`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  { timeout = 10_000, interval = 25, what = 'the condition' } = {},
): Promise<void> {
  const deadline = now() + timeout;
  while (!(await check())) {
    if (now() > deadline) throw new Error(`${what} did not happen within ${timeout} ms`);
    await delay(interval);
  }
}

/** The error `promise` rejects with (fails the test if it resolves, or with a non-Error). */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  const error: unknown = await promise.then(
    () => expect.unreachable('expected a rejection, but the promise resolved'),
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(Error);
  return error as Error;
}

/**
 * Runs `run`, asserts it rejects with an instance of `type`, and returns the error and how long
 * the rejection took (monotonic ms).
 */
export async function rejectsWith<E extends Error>(
  type: new (...args: never[]) => E,
  run: () => Promise<unknown>,
): Promise<{ error: E; ms: number }> {
  const start = now();
  const error = await rejectionOf((async () => run())()); // run() starts synchronously
  const ms = now() - start;
  expect(error).toBeInstanceOf(type);
  return { error: error as E, ms };
}

/** Calls `run`, asserts it throws an instance of `type` synchronously, and returns the error. */
export function throwsWith<E extends Error>(
  type: new (...args: never[]) => E,
  run: () => unknown,
): E {
  let caught: { error: unknown } | undefined;
  try {
    run();
  } catch (error) {
    caught = { error };
  }
  if (!caught) return expect.unreachable(`expected a ${type.name} to be thrown, but nothing was`);
  expect(caught.error).toBeInstanceOf(type);
  return caught.error as E;
}

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

/** Resolves at the monotonic time `signal` aborts (at once if it already has). */
export function abortTime(signal: AbortSignal): Promise<number> {
  if (signal.aborted) return Promise.resolve(now());
  return new Promise((resolve) =>
    signal.addEventListener('abort', () => resolve(now()), { once: true }),
  );
}

/** Expects `signal` aborted with a LockLostError of one of `reasons`. */
export function expectLost(signal: AbortSignal, reasons: readonly LockLostReason[]): void {
  expect(signal.aborted, 'signal aborted').toBe(true);
  expect(signal.reason).toBeInstanceOf(LockLostError);
  expect(reasons).toContain((signal.reason as LockLostError).reason);
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

/** Asserts tokens are decimal strings, strictly increasing (compared as BigInt). */
export function expectStrictlyIncreasing(tokens: readonly (string | undefined)[]): void {
  for (const token of tokens) expect(token).toMatch(/^(0|[1-9]\d*)$/);
  const values = tokens.map((token) => BigInt(token ?? -1));
  const drops = values.flatMap((value, i) => {
    const before = values[i - 1];
    return i > 0 && before !== undefined && value <= before ? [`#${i}: ${before} -> ${value}`] : [];
  });
  expect(drops, 'tokens that did not increase').toEqual([]);
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
