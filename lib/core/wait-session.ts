/**
 * One acquire, from its first attempt to its outcome: the only place that decides when to try
 * again. Backends report facts (granted or not, the holder's remaining TTL, the waiter's place in
 * line, "woken"); the session owns the deadline, the abort signal, the undo of an attempt that
 * succeeded too late, the hand-off waiter of a blocking acquire, and the sleep policy.
 */
import {
  type AttemptOutcome,
  type Granted,
  type LockBackend,
  type LockTarget,
  outcomeOf,
  type PushedGrant,
  type Refused,
} from './backend.js';
import { DriverMissingError } from './errors/driver-missing.error.js';
import { LockAbortedError } from './errors/lock-aborted.error.js';
import { LockBackendError } from './errors/lock-backend.error.js';
import { LockTimeoutError } from './errors/lock-timeout.error.js';
import { lossMargin, serverLifetime } from './hold.js';
import { ownerToken } from './holder.js';
import { DeadlineExceededError, now, settleWithin, sleep } from './timing.js';
import { type Deadline, operationDeadlines } from './timer-queue.js';

/**
 * How long a waiter that was promised a wake-up waits for it before it tries again anyway (a
 * message lost with a dropped connection, a wake-up that went to a waiter that just died): the
 * fallback poll of the first in line. Only the first in line can be granted next, so only its
 * poll recovers a lost grant quickly; a waiter further back polls to stay in line and to learn
 * its new place, so its poll doubles with each place ahead of it, up to `MAX_FALLBACK_POLL`.
 */
export const FALLBACK_POLL = 2_000;
/**
 * The longest fallback poll (before its ±10 % jitter, so at most 33 s): half the minute a Redis
 * lock's line outlives the last attempt of any of its waiters, so that any one live waiter keeps
 * the line alive with a margin of one missed poll. Reached at place 4 (2 s × 2^4 = 32 s).
 */
const MAX_FALLBACK_POLL = 30_000;
/** Places past this one poll at `MAX_FALLBACK_POLL` (keeps `2 ** place` finite). */
const MAX_DOUBLINGS = 5;

/**
 * The fallback poll of the first in line when the server keeps the waiters' places without
 * their polls (`keptInLine`, a Redis lock's line, which lives as long as its holder plus a
 * minute): that poll only finds a grant whose message was lost without the connection breaking
 * (a broken one makes every local waiter try again at once), i.e. a channel the ACL refuses, or
 * a granted waiter that died ahead of it. 5 s bounds that rare delay and keeps 20 waiters'
 * load under 1 % of a peer polling every 100 ms (docs/waiting.md).
 */
export const KEPT_LINE_POLL = 5_000;
/**
 * The longest fallback poll of a waiter whose place is kept (before jitter). Reached at place 3
 * (5 s × 4^3 = 320 s); the holder's TTL (`holderTtl`) and `renewWithin` wake it sooner.
 */
const MAX_KEPT_LINE_POLL = 300_000;

/** The fallback poll of a waiter at `position` in line (0: next), before jitter. */
function fallbackPoll(position: number | undefined, keptInLine?: boolean): number {
  const place = Math.min(Math.max(0, position ?? 0), MAX_DOUBLINGS);
  // A kept place: a waiter further back polls only to learn its place, 4 times less per place.
  if (keptInLine === true) return Math.min(KEPT_LINE_POLL * 4 ** place, MAX_KEPT_LINE_POLL);
  return Math.min(FALLBACK_POLL * 2 ** place, MAX_FALLBACK_POLL);
}

/** What the sleep policy decides from. */
export interface WaitFacts {
  /** Time left until the acquire's timeout, in ms. */
  readonly remaining: number;
  /** The lock's `retryInterval`, in ms. */
  readonly retryInterval: number;
  /** Whether a release wakes this waiter (a hand-off waiter is listening). */
  readonly pushed: boolean;
  /** The holder's remaining time to live now, in ms (-1: no expiry; undefined: unknown). */
  readonly holderTtl?: number | undefined;
  /** The waiter's place in line (0: next). */
  readonly position?: number | undefined;
  /** In how many ms the waiter's place in line must be renewed by an attempt. */
  readonly renewWithin?: number | undefined;
  /**
   * The server keeps the waiter's place without its polls (until `renewWithin`) and grants a
   * free lock to the first in line itself (a Redis lock): slower fallback polls.
   */
  readonly keptInLine?: boolean | undefined;
}

/**
 * How long to wait before the next attempt: the whole waiting policy. A polling waiter sleeps
 * `retryInterval` with jitter (50–100 %) so that waiters do not move in step; a pushed waiter
 * sleeps until woken, bounded by a fallback poll (2 s for the first in line, doubling with each
 * place further back, at most 30 s; where the server keeps its place (`keptInLine`): 5 s for
 * the first in line, 4 times as long per place further back, at most 5 min; ±10 % jitter).
 * Either wakes just after the holder's TTL runs out, before its place in line must be renewed,
 * and by the acquire's deadline.
 */
export function sleepBeforeNextAttempt(
  facts: WaitFacts,
  random: () => number = Math.random,
): number {
  let ms = facts.pushed
    ? fallbackPoll(facts.position, facts.keptInLine) * (0.9 + random() * 0.2)
    : facts.retryInterval * (0.5 + random() / 2);
  if (facts.holderTtl !== undefined && facts.holderTtl >= 0) ms = Math.min(ms, facts.holderTtl + 1);
  if (facts.renewWithin !== undefined) ms = Math.min(ms, facts.renewWithin);
  return Math.max(0, Math.min(ms, facts.remaining));
}

/** What a session needs of the lock it acquires. */
export interface SessionLock<H> {
  readonly target: LockTarget;
  readonly backend: LockBackend<object, H, unknown>;
  readonly operationTimeout: number;
  readonly retryInterval: number;
  /**
   * A blocking acquire found the lock taken for the first time and starts waiting (`waited`: ms
   * since the acquire began). Called once per acquire; must not throw.
   */
  readonly onWaiting?: (refused: Refused, waited: number, timeout: number) => void;
  /** The holder metadata every owner token carries (`ownerSuffix()`); absent: none. */
  readonly ownerSuffix?: string;
}

/** An acquire call's settings. */
export interface AcquireRequest {
  readonly blocking: boolean;
  readonly timeout: number;
  readonly signal?: AbortSignal | undefined;
}

/** A granted acquire: the owner token and what the backend said. */
export interface Acquired<H> extends Granted<H> {
  readonly token: string;
  /** When the lock's expiry started counting at the server, at the latest (`performance.now()`). */
  readonly startedAt: number;
}

/** A non-blocking acquire found the lock taken. */
export interface Busy {
  readonly granted: false;
  /** When the lock should be free at the latest (ms), if known: see `LockTimeoutError.retryAfter`. */
  readonly retryAfter: number | undefined;
}

/**
 * When the lock should be free at the latest (ms): the holder's remaining time to live from the
 * last refusal; `undefined` when the server did not report it (or the holder has no expiry).
 */
function retryAfterOf(last: Refused | undefined, lastAt: number): number | undefined {
  const ttl = last?.holderTtl;
  if (ttl !== undefined && ttl >= 0) return Math.max(0, ttl - (now() - lastAt));
  return undefined;
}

/**
 * How many failed attempts in a row, after the server answered at least once, make a blocking
 * acquire that runs out of time end with `LockBackendError` rather than `LockTimeoutError`: one
 * failure after "busy" answers is a glitch (the lock was busy); two or more, the server is down.
 */
export const FAILURES_FOR_UNAVAILABLE = 2;

/**
 * Runs one acquire. Resolves `Acquired` or, for a non-blocking acquire that found the lock taken,
 * `Busy`; rejects with `LockTimeoutError` (blocking, `timeout` ran out while the lock was busy),
 * `LockAbortedError` (`signal`), `LockBackendError` (non-blocking: the attempt failed; blocking:
 * `timeout` ran out and the server never answered, or its last `FAILURES_FOR_UNAVAILABLE`
 * attempts failed) or `DriverMissingError`.
 * Every step is bounded: a blocking acquire ends by `timeout + operationTimeout` at worst.
 */
export function runAcquire<H>(
  lock: SessionLock<H>,
  request: AcquireRequest,
  /** When the acquire began (`now()`), if the caller just read the clock. */
  start: number = now(),
  /** The first attempt, if the caller already made it (see `FirstAttempt`). */
  first?: FirstAttempt,
): Promise<Acquired<H> | Busy> {
  return new WaitSession(lock, request, start, first).run();
}

/**
 * @internal the first attempt of an acquire, made by the caller before the session (the lock's
 * uncontended path, base-lock.ts): refused, or failed (`error`: an abandoned attempt already
 * undone). The session goes on from there as if its own first attempt had ended so. Only for an
 * acquire without a signal whose first attempt goes without a waiter (non-blocking, or a
 * hand-off with `openAfterRefusal`).
 */
export type FirstAttempt = { readonly refused: Refused } | { readonly error: unknown };

class WaitSession<H> {
  private readonly handOff;
  /** The hand-off waiter is opened after the first refusal (`openAfterRefusal`), not yet. */
  private openLater: boolean;
  private waiter: unknown;
  private hasWaiter = false;
  private listening = false;
  private last: Refused | undefined;
  private lastAt = 0;
  /** When the last refused attempt was sent: a grant pushed since was made after it. */
  private lastSentAt = 0;
  private waiting = false;
  /** Which waiter's wake-ups count (`openWaiter` makes a new one): an old waiter's are ignored. */
  private generation = 0;
  /** A wake-up came while no pushed sleep was under way: the next one returns at once. */
  private rung = false;
  /** Ends the pushed sleep under way (`sleepInLine`), with a grant taken from the message or not. */
  private wakeUp: ((grant: Acquired<H> | undefined) => void) | undefined;
  private sleepTimer: Deadline | undefined;
  private onAbortSleep: (() => void) | undefined;
  /** Granted from a pushed message: the waiter is closed after the caller is resolved. */
  private closeLater = false;

  constructor(
    private readonly lock: SessionLock<H>,
    private readonly request: AcquireRequest,
    private readonly start: number,
    private first?: FirstAttempt,
  ) {
    this.handOff = request.blocking ? lock.backend.handOff : undefined;
    this.openLater = this.handOff?.openAfterRefusal === true;
  }

  async run(): Promise<Acquired<H> | Busy> {
    const { blocking, timeout, signal } = this.request;
    const { target, operationTimeout } = this.lock;
    let granted = false;
    let lastError: unknown;
    let answered = false;
    let failuresInARow = 0;
    let attempts = 0;
    // A backend that would listen at once (its channel already subscribed): the waiter listens
    // before the first attempt, which then puts it in line if refused.
    const warm = this.first === undefined && this.handOff?.listensAlready?.(target) === true;
    if (warm) this.openLater = false;
    if (!this.openLater) this.openWaiter();
    try {
      if (warm && this.hasWaiter) await this.listen();
      for (;;) {
        if (signal?.aborted) throw new LockAbortedError(target.name, { cause: signal.reason });
        try {
          // Every attempt may take up to operationTimeout, so the last one (sent when `timeout`
          // runs out) can finish: a blocking acquire ends by timeout + operationTimeout at worst.
          // The first attempt counts from the acquire's start (one clock reading less).
          let outcome: Acquired<H> | Refused;
          const first = this.first;
          const sentAt = attempts++ === 0 ? this.start : now();
          if (first !== undefined) {
            // Made by the caller (FirstAttempt): its outcome, as if this attempt had just ended.
            this.first = undefined;
            if ('error' in first) throw first.error;
            outcome = first.refused;
          } else {
            outcome = await this.attempt(operationTimeout, sentAt);
          }
          if (outcome.granted) {
            granted = true;
            return outcome;
          }
          this.last = outcome;
          this.lastAt = now();
          this.lastSentAt = sentAt;
          lastError = undefined;
          answered = true;
          failuresInARow = 0;
          if (blocking && !this.waiting) {
            this.waiting = true;
            this.lock.onWaiting?.(outcome, this.lastAt - this.start, timeout);
          }
        } catch (err) {
          // Aborted, or the backend's driver is not installed: retrying cannot help.
          if (err instanceof LockAbortedError || err instanceof DriverMissingError) throw err;
          if (!blocking) throw new LockBackendError(target.name, 'acquire', { cause: err });
          lastError = err;
          failuresInARow += 1;
          this.last = undefined;
          // An attempt that failed (or was given up on, and may still run) leaves the waiter's
          // place in line in an unknown state: leave the line, and queue afresh.
          this.discardWaiter();
        }
        if (!blocking) {
          return {
            granted: false,
            retryAfter: retryAfterOf(this.last, this.lastAt),
          };
        }
        if (now() - this.start >= timeout) {
          // A server that could not be reached is no busy lock: say so (the caller can act on it).
          if (
            lastError !== undefined &&
            (!answered || failuresInARow >= FAILURES_FOR_UNAVAILABLE)
          ) {
            throw new LockBackendError(target.name, 'acquire', { cause: lastError });
          }
          const retryAfter = retryAfterOf(this.last, this.lastAt);
          throw new LockTimeoutError(
            target.name,
            timeout,
            lastError === undefined ? { retryAfter } : { cause: lastError, retryAfter },
          );
        }
        if (this.openLater) {
          // Refused (or failed) for the first time: the waiter the next attempts go with.
          this.openLater = false;
          this.openWaiter();
        }
        if (lastError === undefined && this.hasWaiter && !(await this.listen())) continue;
        const pushed = await this.sleep();
        if (pushed !== undefined && !signal?.aborted) {
          // Granted by a release's message while in line: the acquire's outcome, no attempt.
          granted = true;
          this.closeLater = true;
          return pushed;
        }
        // (Aborted as the grant came: the waiter closes ungranted, and LEAVE passes it on.)
      }
    } finally {
      if (this.closeLater) setImmediate(closeGranted, this);
      else this.closeWaiter(granted);
    }
  }

  /** A new hand-off waiter for this acquire (blocking, on a backend that pushes releases). */
  private openWaiter(): void {
    if (!this.handOff) return;
    const generation = ++this.generation;
    this.rung = false;
    try {
      this.waiter = this.handOff.open(this.lock.target, () => {
        if (generation === this.generation) this.ring();
      });
    } catch {
      return; // no hand-off: poll
    }
    this.hasWaiter = true;
    this.listening = false;
  }

  /**
   * The waiter was woken (a release, a reconnect): ends the pushed sleep under way (with the
   * grant the message carried, if any), or makes the next one return at once.
   */
  private ring(): void {
    this.rung = true;
    if (this.wakeUp !== undefined) this.endSleep(this.pushedGrant());
  }

  /**
   * The grant a release pushed to this waiter, taken from its message, as the acquire's outcome.
   * Its expiry started at the server when the release ran: after the last refused attempt was
   * sent (that attempt found another holder), before the message arrived. It counts from the
   * message's arrival less the last attempt's round trip (the message came over the same kind of
   * link), and never from before that attempt was sent: the loss margin covers a message that
   * took longer than a round trip.
   */
  private pushedGrant(): Acquired<H> | undefined {
    const handOff = this.handOff;
    if (handOff?.takeGrant === undefined || !this.listening) return undefined;
    let grant: PushedGrant | undefined;
    try {
      grant = handOff.takeGrant(this.lock.target, this.waiter);
    } catch {
      return undefined; // the attempt that follows takes it, or learns the lock's state
    }
    if (grant === undefined) return undefined;
    const roundTrip = Math.max(0, this.lastAt - this.lastSentAt);
    const startedAt = Math.min(grant.since, Math.max(this.lastSentAt, grant.since - roundTrip));
    // A grant whose expiry (less the loss margin) has passed, by this count (a message that
    // waited in the socket while this process was frozen, and dated by the server's time: see
    // `since`): not taken. The lock may be another's by now; the attempt that follows says
    // whether it is still this waiter's (its expiry starts again) or queues it again. Taking it
    // and letting the loss deadline fire would resolve acquire() with a lock already lost.
    if (this.expiredGrant(startedAt)) return undefined;
    return {
      granted: true,
      fencingToken: grant.fencingToken,
      since: grant.since,
      held: undefined,
      token: grant.ownerToken,
      startedAt,
      ownerToken: grant.ownerToken,
    };
  }

  /** Whether a holding whose expiry started at `startedAt` would be lost already (hold.ts). */
  private expiredGrant(startedAt: number): boolean {
    const ttl = this.lock.target.expire;
    if (ttl === null) return false;
    const lifetime = serverLifetime(ttl, this.lock.backend.capabilities.expiry);
    return startedAt + lifetime - lossMargin(lifetime) <= now();
  }

  private closeWaiter(granted: boolean): void {
    if (!this.hasWaiter || !this.handOff) return;
    const waiter = this.waiter;
    this.hasWaiter = false;
    this.waiter = undefined;
    this.listening = false;
    try {
      this.handOff.close(this.lock.target, waiter, granted);
    } catch {
      // a backend's clean-up failing must not fail the acquire
    }
  }

  private discardWaiter(): void {
    if (!this.hasWaiter) return;
    this.closeWaiter(false);
    this.openWaiter();
  }

  /**
   * Starts listening for releases (bounded by the deadline and operationTimeout). Resolves true
   * when the last attempt is covered; false to attempt again at once. A failure to listen makes
   * the rest of the acquire poll.
   */
  private async listen(): Promise<boolean> {
    const { target, operationTimeout } = this.lock;
    const handOff = this.handOff;
    if (!handOff) return true;
    const bound = Math.max(
      1,
      Math.min(operationTimeout, this.request.timeout - (now() - this.start)),
    );
    const listening = Promise.resolve().then(() => handOff.listen(target, this.waiter));
    try {
      const settled = await settleWithin(listening, bound, this.request.signal);
      if (settled.kind === 'value') {
        this.listening = true;
        return settled.value;
      }
      if (settled.kind === 'aborted') {
        throw new LockAbortedError(target.name, { cause: settled.reason });
      }
    } catch (err) {
      if (err instanceof LockAbortedError) throw err;
    }
    // No notifications (the subscription failed or took too long): poll from now on.
    listening.catch(() => undefined);
    this.closeWaiter(false);
    return true;
  }

  /**
   * Sleeps before the next attempt; resolves a grant pushed meanwhile (see `sleepInLine`). Not
   * an async function: the loop awaits the sleep's own promise (no promise adopted on the way).
   */
  private sleep(): Promise<Acquired<H> | undefined> | Acquired<H> | undefined {
    const { retryInterval } = this.lock;
    const elapsedSinceAttempt = now() - this.lastAt;
    const last = this.last;
    const pushed = this.hasWaiter && this.listening;
    const ms = sleepBeforeNextAttempt({
      remaining: this.request.timeout - (now() - this.start),
      retryInterval,
      pushed,
      holderTtl:
        last?.holderTtl === undefined || last.holderTtl < 0
          ? last?.holderTtl
          : Math.max(0, last.holderTtl - elapsedSinceAttempt),
      position: last?.position,
      renewWithin:
        last?.renewWithin === undefined
          ? undefined
          : Math.max(0, last.renewWithin - elapsedSinceAttempt),
      keptInLine: last?.keptInLine,
    });
    if (pushed) return this.sleepInLine(ms);
    // No time left: the last attempt goes out now, not a timer tick later.
    return ms > 0 ? sleep(ms, this.request.signal).then(noGrant) : undefined;
  }

  /**
   * Sleeps in line up to `ms` (0: not at all), until woken or aborted; resolves the grant a
   * release pushed to this waiter, if its message is what woke it. The timer is an entry in the
   * shared deadline queue (nothing to clear on the wake-up's path, see timer-queue.ts).
   */
  private sleepInLine(ms: number): Promise<Acquired<H> | undefined> | Acquired<H> | undefined {
    const signal = this.request.signal;
    if (this.rung || ms <= 0 || signal?.aborted) {
      // Woken since the last attempt: the message may have been the grant.
      const grant = this.rung ? this.pushedGrant() : undefined;
      this.rung = false;
      return grant;
    }
    return new Promise((resolve) => {
      this.wakeUp = resolve;
      this.sleepTimer = operationDeadlines.addAt(now() + ms, sleptOut, this);
      if (signal) {
        this.onAbortSleep ??= () => this.endSleep(undefined);
        signal.addEventListener('abort', this.onAbortSleep, { once: true });
      }
    });
  }

  /** Ends the pushed sleep under way (once), resolving `grant`. */
  endSleep(grant: Acquired<H> | undefined): void {
    const wakeUp = this.wakeUp;
    if (wakeUp === undefined) return;
    this.wakeUp = undefined;
    this.rung = false;
    this.sleepTimer?.cancel();
    this.sleepTimer = undefined;
    if (this.onAbortSleep) this.request.signal?.removeEventListener('abort', this.onAbortSleep);
    wakeUp(grant);
  }

  /** @internal Closes the waiter of an acquire granted by a pushed message (after resolving it). */
  closeGranted(): void {
    this.closeLater = false;
    this.closeWaiter(true);
  }

  /**
   * One attempt with its own deadline, sent at `sentAt`. A late success of an abandoned attempt
   * is undone.
   */
  private async attempt(deadline: number, sentAt: number): Promise<Acquired<H> | Refused> {
    const { target, backend } = this.lock;
    const token = ownerToken(this.lock.ownerSuffix);
    const waiter = this.hasWaiter ? this.waiter : undefined;
    let pending: Promise<AttemptOutcome<H>>;
    try {
      // As callAsync would (a synchronous throw is a rejection), without a closure per attempt.
      pending = Promise.resolve(backend.acquire(target, token, waiter));
    } catch (err) {
      pending = Promise.reject(err as Error);
    }
    let settled;
    try {
      settled = await settleWithin(pending, deadline, this.request.signal, sentAt);
    } catch (err) {
      // The server may have applied the write before the error (a dropped reply): undo it.
      undo(this.lock, token, pending);
      throw err;
    }
    if (settled.kind === 'value') {
      const outcome = outcomeOf(settled.value);
      if (!outcome.granted) return outcome;
      const startedAt = outcome.since === undefined ? sentAt : Math.min(outcome.since, sentAt);
      // Field by field, not a spread: this runs once per acquire.
      if (outcome.ownerToken !== undefined) {
        return {
          granted: true,
          fencingToken: outcome.fencingToken,
          since: outcome.since,
          held: outcome.held,
          token: outcome.ownerToken,
          startedAt,
          ownerToken: outcome.ownerToken,
        };
      }
      return {
        granted: true,
        fencingToken: outcome.fencingToken,
        since: outcome.since,
        held: outcome.held,
        token,
        startedAt,
      };
    }
    undo(this.lock, token, pending);
    if (settled.kind === 'aborted') {
      throw new LockAbortedError(target.name, { cause: settled.reason });
    }
    throw new DeadlineExceededError('acquire', deadline);
  }
}

const noGrant = (): undefined => undefined;

/** A pushed sleep's time ran out (the deadline queue's callback: no closure per sleep). */
function sleptOut(session: { endSleep(grant: undefined): void }): void {
  session.endSleep(undefined);
}

/** After a pushed grant resolved the acquire: closes its waiter (no closure per acquire). */
function closeGranted(session: { closeGranted(): void }): void {
  session.closeGranted();
}

/**
 * @internal releases `token` in the background once an abandoned attempt settles (best effort).
 */
export function undo<H>(lock: SessionLock<H>, token: string, pending: Promise<unknown>): void {
  const { target, backend } = lock;
  pending
    .then(
      (result) => {
        const outcome = outcomeOf(result as Parameters<typeof outcomeOf<H>>[0]);
        if (!outcome.granted) return false;
        return backend.release(target, outcome.ownerToken ?? token, outcome.held);
      },
      () => backend.release(target, token, undefined),
    )
    .catch(() => undefined);
}
