import type { LockLostError } from './errors/lock-lost.error.js';
import { type Deadline, lossDeadlines } from './timer-queue.js';
import { now, startTimer, type Timer } from './timing.js';

/** How long before a lock's expiry its signal aborts when it could not be renewed. */
export const lossMargin = (ttl: number): number => Math.min(ttl / 10, 1_000);

/**
 * How long the server surely keeps a lock it was asked to keep for `ttl` ms, given its backend's
 * expiry granularity and how early it may let go (`capabilities.expiry`).
 */
export function serverLifetime(
  ttl: number,
  expiry: { readonly granularity: number; readonly earlyBy: number },
): number {
  return Math.min(ttl, Math.ceil(ttl / expiry.granularity) * expiry.granularity - expiry.earlyBy);
}

/**
 * One holding of a lock: its owner token, fencing token, loss signal and timers. The server
 * cannot expire the lock before `sentAt + ttl` of the last successful acquire or extend (the TTL
 * starts when the server applies the command, after we sent it), so the signal aborts a margin
 * before that instant unless a renewal confirms the lock again.
 */
export class Hold {
  /** Made on first use: most holdings never look at their signal (one allocation less each). */
  private controller: AbortController | undefined;
  /** Set when lost; checked instead of `signal.aborted`, which would build the signal eagerly. */
  private lost = false;
  /** In the shared queue of loss deadlines: no Node timer per holding (see timer-queue.ts). */
  private lossTimer: Deadline | undefined;
  private renewTimer: Timer | undefined;
  constructor(
    readonly token: string,
    readonly fencingToken: string | undefined,
    /** What the backend needs to release or extend this holding (its `held`). */
    readonly held: unknown,
    private readonly onExpiry: (hold: Hold) => void,
    /** How long the acquire that got this holding waited, in ms. */
    readonly waited = 0,
    /** When the acquire that got this holding was granted (`performance.now()`). */
    readonly acquiredAt = now(),
  ) {}

  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    return this.controller.signal;
  }

  /**
   * The lock was (re)confirmed by a command sent at `sentAt` with `ttl` ms (null: no expiry);
   * `at`: the time now, if the caller just read it.
   */
  confirm(sentAt: number, ttl: number | null, at = now()): void {
    this.lossTimer?.cancel();
    if (ttl === null || this.lost) return;
    // No closure per holding: the queue calls onExpiry(this).
    this.lossTimer = lossDeadlines.addAt(
      Math.max(at, sentAt + ttl - lossMargin(ttl)),
      this.onExpiry,
      this as Hold,
    );
  }

  /** Runs `renew` in `interval` ms (unless stopped or lost meanwhile). */
  scheduleRenewal(interval: number, renew: () => void): void {
    this.renewTimer?.clear();
    if (this.lost) return;
    this.renewTimer = startTimer(renew, interval, true);
  }

  /** Aborts the signal with `error` (once) and stops the timers. */
  lose(error: LockLostError): boolean {
    this.stop();
    if (this.lost) return false;
    this.lost = true;
    this.controller ??= new AbortController();
    this.controller.abort(error);
    return true;
  }

  /** Stops the timers (on release). */
  stop(): void {
    this.lossTimer?.cancel();
    this.renewTimer?.clear();
  }
}
