/**
 * The helpers of the contract kit (time, rejections, fencing tokens, free ports); internal.
 */
import { createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { BackendCapabilities } from '../core/backend.js';
import { LockLostError, type LockLostReason } from '../sherlock.js';
import { expect } from './expect.js';

export { delay };

/** Generous slack added to every upper time bound: test machines are shared and noisy. */
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

/** The error `promise` rejects with (fails if it resolves, or rejects with a non-Error). */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    () => ({ resolved: true as const }),
    (error: unknown) => ({ resolved: false as const, error }),
  );
  if (outcome.resolved) return expect.unreachable('expected a rejection, but the promise resolved');
  expect(outcome.error).toBeInstanceOf(Error);
  return outcome.error as Error;
}

/** Runs `run`, asserts it rejects with a `type`, returns the error and how long it took (ms). */
export async function rejectsWith<E extends Error>(
  type: abstract new (...args: never[]) => E,
  run: () => Promise<unknown>,
): Promise<{ error: E; ms: number }> {
  const start = now();
  const error = await rejectionOf((async () => run())());
  const ms = now() - start;
  expect(error).toBeInstanceOf(type);
  return { error: error as E, ms };
}

/** Calls `run`, asserts it throws a `type` synchronously, and returns the error. */
export function throwsWith<E extends Error>(
  type: abstract new (...args: never[]) => E,
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

/**
 * How long the server surely keeps a lock it was asked to keep for `ttl` ms, as the backend
 * declares it (whole seconds, freed up to `earlyBy` ms early).
 */
export function lifetime(
  { capabilities }: { readonly capabilities: BackendCapabilities },
  ttl: number,
): number {
  const { granularity, earlyBy } = capabilities.expiry;
  return Math.min(ttl, Math.ceil(ttl / granularity) * granularity - earlyBy);
}

/** A lock name no other test uses. */
export function uniqueName(prefix = 'lock'): string {
  const random = Math.random().toString(36).slice(2, 8);
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${random}`;
}

/** A TCP port on 127.0.0.1 where nothing listens (free a moment ago). */
export function getFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
