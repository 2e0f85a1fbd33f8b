import { randomFillSync } from 'node:crypto';

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
    super(`no answer from the server for ${operation} within ${deadline} ms`);
    this.name = 'DeadlineExceededError';
  }
}

export type Settled<T> =
  | { readonly kind: 'value'; readonly value: T }
  | { readonly kind: 'deadline' }
  | { readonly kind: 'aborted'; readonly reason: unknown };

/**
 * Waits for `pending` at most `deadline` ms, or until `signal` aborts, whichever comes first.
 * Rejections of `pending` propagate. Never leaves a timer or listener behind.
 */
export function settleWithin<T>(
  pending: Promise<T>,
  deadline: number,
  signal?: AbortSignal,
): Promise<Settled<T>> {
  if (signal?.aborted) return Promise.resolve({ kind: 'aborted', reason: signal.reason });
  return new Promise<Settled<T>>((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      cleanup();
      resolve({ kind: 'aborted', reason: signal?.reason });
    };
    const timer = setTimeout(() => {
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

/** Sleeps `ms`, resolving `false` early if `signal` aborts (and `true` when the time passed). */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A sleep that `ring()` cuts short, for waiters woken by a release. A ring while nobody sleeps is
 * kept, so the next `sleep()` returns at once: no wake-up between two sleeps is lost.
 */
export class Alarm {
  private rung = false;
  private sleeping: AbortController | undefined;

  readonly ring = (): void => {
    this.rung = true;
    this.sleeping?.abort();
  };

  /** Sleeps up to `ms`, until rung, or until `signal` aborts. */
  async sleep(ms: number, signal?: AbortSignal): Promise<void> {
    if (!this.rung) {
      this.sleeping = new AbortController();
      const stop = signal ? AbortSignal.any([signal, this.sleeping.signal]) : this.sleeping.signal;
      await sleep(ms, stop);
      this.sleeping = undefined;
    }
    this.rung = false;
  }
}
