import { randomFillSync } from 'node:crypto';
import { messages } from './messages.js';
import { operationDeadlines } from './timer-queue.js';

/** Monotonic milliseconds: immune to wall-clock jumps. */
export const now = (): number => performance.now();

const pool = Buffer.alloc(4096);
let offset = pool.length;

/**
 * A fresh owner token: 128 random bits from the OS CSPRNG, as 32 hex characters. Drawn from a
 * pool refilled 4 KiB at a time (one `randomFillSync` per 256 tokens), as the bench showed the
 * per-call `randomBytes` cost on the hot path; every byte is still used once only.
 */
export const newOwnerToken = (): string => {
  if (offset + 16 > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const token = pool.toString('hex', offset, offset + 16);
  offset += 16;
  return token;
};

/** The operation did not answer within its deadline. */
export class DeadlineExceededError extends Error {
  constructor(
    readonly operation: string,
    readonly deadline: number,
  ) {
    super(messages.deadline(operation, deadline));
    this.name = 'DeadlineExceededError';
  }
}

export type Settled<T> =
  | { readonly kind: 'value'; readonly value: T }
  | { readonly kind: 'deadline' }
  | { readonly kind: 'aborted'; readonly reason: unknown };

/** The longest delay `setTimeout` takes (about 24.8 days); a longer one would fire at once. */
export const MAX_TIMER = 2 ** 31 - 1;

/** A timer started by `startTimer`. */
export interface Timer {
  clear(): void;
}

/**
 * `setTimeout` for any delay: one longer than `MAX_TIMER` (a 30-day expire, say) is split into
 * several timers instead of firing at once. `unref`: the timer does not keep the process alive.
 */
export function startTimer(fn: () => void, ms: number, unref = false): Timer {
  let handle: NodeJS.Timeout;
  const arm = (left: number) => {
    handle = setTimeout(
      () => (left > MAX_TIMER ? arm(left - MAX_TIMER) : fn()),
      Math.min(left, MAX_TIMER),
    );
    if (unref) handle.unref();
  };
  arm(Math.max(0, ms));
  return { clear: () => clearTimeout(handle) };
}

/**
 * Waits for `pending` at most `deadline` ms, or until `signal` aborts, whichever comes first.
 * Rejections of `pending` propagate. Never leaves a timer or listener behind. `from`: when the
 * deadline started counting (`now()`), if the caller just read the clock.
 */
export function settleWithin<T>(
  pending: Promise<T>,
  deadline: number,
  signal?: AbortSignal,
  from?: number,
): Promise<Settled<T>> {
  if (signal?.aborted) return Promise.resolve({ kind: 'aborted', reason: signal.reason });
  // The hot path (every acquire attempt, release and extend): no signal. A deadline in the
  // shared queue (no Node timer of its own, see timer-queue.ts), no listener, no closure.
  if (signal === undefined) {
    return new Promise<Settled<T>>((resolve, reject) => {
      const at = (from ?? now()) + Math.max(0, deadline);
      const timer = operationDeadlines.addAt(at, resolve, DEADLINE as Settled<T>);
      pending.then(
        (value) => {
          timer.cancel();
          resolve({ kind: 'value', value });
        },
        (err: unknown) => {
          timer.cancel();
          reject(err);
        },
      );
    });
  }
  return new Promise<Settled<T>>((resolve, reject) => {
    const cleanup = () => {
      timer.clear();
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      cleanup();
      resolve({ kind: 'aborted', reason: signal?.reason });
    };
    const timer = startTimer(() => {
      cleanup();
      resolve({ kind: 'deadline' });
    }, deadline);
    signal?.addEventListener('abort', onAbort, { once: true });
    pending.then(
      (value) => {
        cleanup();
        resolve({ kind: 'value', value });
      },
      (err: unknown) => {
        cleanup();
        reject(err);
      },
    );
  });
}

const DEADLINE: Settled<never> = Object.freeze({ kind: 'deadline' });

/**
 * `fn()` as a promise: a synchronous throw becomes a rejection, without deferring the call to a
 * microtask (as `Promise.resolve().then(fn)` would: one promise and one tick less per call).
 */
export function callAsync<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

/** Sleeps `ms`, resolving `false` early if `signal` aborts (and `true` when the time passed). */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const onAbort = () => {
      timer.clear();
      resolve(false);
    };
    const timer = startTimer(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
