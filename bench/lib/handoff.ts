/**
 * Scenario 3 (hand-off): the loop each worker runs, the messages between the parent and the
 * worker processes, and the analysis of the recorded critical sections.
 */
import type { LockHandle } from './contenders.js';
import { hr, ms, sleep, summarize, type Summary } from './stats.js';

/** One critical section, timed with the cross-process monotonic clock (ns). */
export interface Section {
  /** Worker index (0..n-1). */
  readonly worker: number;
  readonly pid: number;
  /** acquire() called. */
  readonly requested: bigint;
  /** acquire() resolved: the section starts. */
  readonly acquired: bigint;
  /** release() called: the section ends. */
  readonly releasing: bigint;
  /** release() resolved. */
  readonly released: bigint;
  /**
   * With BENCH_TRACE=1 only: when a pub/sub message (the grant, or the wake-up) reached this
   * process during the acquire (ioredis emitting 'message'/'smessage', see bench/worker.ts).
   */
  readonly woken?: bigint;
}

/** BENCH_TRACE=1: the last pub/sub message's arrival in this process (0n: none), set by the worker. */
export const trace = { messageAt: 0n };

export interface LoopSettings {
  /** Time in the critical section (setTimeout). */
  readonly holdMs: number;
  /** Unlocked work between a release and the next request (setTimeout). */
  readonly workMs: number;
  /** Stop requesting once the clock passes this (ns). */
  readonly endAt: bigint;
}

export interface LoopOutcome {
  readonly sections: Section[];
  readonly errors: string[];
}

/**
 * Acquire (blocking), hold `holdMs`, release, then `workMs` of unlocked work, until `endAt`.
 * Both waits are `setTimeout`s (not busy-waits: 32 spinning processes on 2 cores would starve
 * the very processes being measured), so they last at least the time asked, typically ~0.1-0.3
 * ms more.
 */
export async function handoffLoop(
  handle: LockHandle,
  worker: number,
  settings: LoopSettings,
): Promise<LoopOutcome> {
  const sections: Section[] = [];
  const errors: string[] = [];
  while (hr() < settings.endAt) {
    const requested = hr();
    trace.messageAt = 0n;
    try {
      await handle.acquire();
    } catch (err) {
      errors.push(`acquire: ${String(err)}`);
      continue;
    }
    const acquired = hr();
    const woken = trace.messageAt;
    await sleep(settings.holdMs);
    const releasing = hr();
    try {
      await handle.release();
    } catch (err) {
      errors.push(`release: ${String(err)}`);
    }
    const released = hr();
    sections.push({
      worker,
      pid: process.pid,
      requested,
      acquired,
      releasing,
      released,
      ...(woken > 0n ? { woken } : {}),
    });
    await sleep(settings.workMs);
  }
  return { sections, errors };
}

/** Parent → worker. */
export type ToWorker =
  | { readonly type: 'prepare'; readonly contender: string; readonly key: string }
  | { readonly type: 'start'; readonly startAt: bigint; readonly settings: LoopSettings }
  | { readonly type: 'exit' };

/** Worker → parent. */
export type FromWorker =
  | { readonly type: 'ready' }
  | { readonly type: 'prepared' }
  | { readonly type: 'done'; readonly outcome: LoopOutcome }
  | { readonly type: 'failed'; readonly error: string };

export interface Overlap {
  readonly first: Section;
  readonly second: Section;
  readonly overlapMs: number;
}

export interface HandoffResult {
  readonly workers: number;
  readonly durationMs: number;
  /** Sections that started within the measured window. */
  readonly sections: number;
  readonly sectionsPerSecond: number;
  /**
   * From the holder's release() call to the next holder's acquire() resolving, for the releases
   * that another worker was waiting for (ms). The next holder may be the releasing worker itself
   * (see `barged`).
   */
  readonly gap: Summary;
  /** The same, only where the next holder was another worker (a waiter) (ms). */
  readonly gapToOther: Summary;
  /** Share of those releases after which the releasing worker itself took the lock again. */
  readonly barged: number;
  /**
   * Share of those releases whose next holder was already waiting when the release was called
   * (its acquire called before): 1 for strict first come, first served.
   */
  readonly toWaiting: number;
  /** Jain's fairness index of the sections per worker: 1 when all had the same number. */
  readonly jain: number;
  /** From acquire() called to acquire() resolved (ms). */
  readonly wait: Summary;
  /**
   * The same, each worker's first acquire left out: every worker requests at the same instant
   * then, and a client's first wait connects its hand-off listener (this library's subscriber
   * connection), which 32 processes do at once on 2 cores; the rest is the steady state.
   */
  readonly waitAfterFirst: Summary;
  /** release() round trip (ms). */
  readonly release: Summary;
  /** How long the sections lasted, acquire() resolved → release() called (ms; hold asked: holdMs). */
  readonly held: Summary;
  readonly perWorkerMin: number;
  readonly perWorkerMax: number;
  /** Workers with no section in the window. */
  readonly starved: number;
  readonly overlaps: readonly Overlap[];
  readonly errors: readonly string[];
  /**
   * BENCH_TRACE=1: the hand-offs to another process whose next holder got a message, split at
   * the message's arrival (ms): release() called → message, message → acquire() resolved.
   */
  readonly trace?: { readonly releaseToMessage: Summary; readonly messageToAcquired: Summary };
}

export function analyze(
  outcomes: readonly LoopOutcome[],
  workers: number,
  startAt: bigint,
  endAt: bigint,
): HandoffResult {
  const all = outcomes.flatMap((o) => o.sections).sort((a, b) => Number(a.acquired - b.acquired));
  const inWindow = (s: Section) => s.acquired >= startAt && s.acquired < endAt;

  // Mutual exclusion: no section may start before every earlier one has ended.
  const overlaps: Overlap[] = [];
  let latest: Section | undefined;
  for (const section of all) {
    if (latest && section.acquired < latest.releasing) {
      overlaps.push({
        first: latest,
        second: section,
        overlapMs: ms(latest.releasing - section.acquired),
      });
    }
    if (!latest || section.releasing > latest.releasing) latest = section;
  }

  // Hand-offs: releases with another worker waiting (its acquire called before the release and
  // resolved after it). The gap runs to the next holder, whoever it is: a woken waiter, or the
  // releasing worker itself coming back and taking the lock first (a barge).
  const gaps: number[] = [];
  const toOther: number[] = [];
  const toMessage: number[] = [];
  const messageToAcquired: number[] = [];
  let barged = 0;
  let toWaiting = 0;
  all.forEach((previous, index) => {
    const next = all[index + 1];
    if (!next || !inWindow(next)) return;
    const waiting = all
      .slice(index + 1)
      .some((s) => s.worker !== previous.worker && s.requested < previous.releasing);
    if (!waiting) return;
    const gap = ms(next.acquired - previous.releasing);
    gaps.push(gap);
    if (next.requested < previous.releasing) toWaiting++;
    if (next.worker === previous.worker) barged++;
    else toOther.push(gap);
    if (next.worker !== previous.worker && next.woken !== undefined) {
      toMessage.push(ms(next.woken - previous.releasing));
      messageToAcquired.push(ms(next.acquired - next.woken));
    }
  });

  const counted = all.filter(inWindow);
  const firsts = new Set<Section>();
  const seen = new Set<number>();
  for (const section of [...all].sort((a, b) => Number(a.requested - b.requested))) {
    if (!seen.has(section.worker)) firsts.add(section);
    seen.add(section.worker);
  }
  const perWorker = new Array<number>(workers).fill(0);
  for (const section of counted) perWorker[section.worker] = (perWorker[section.worker] ?? 0) + 1;
  const durationMs = ms(endAt - startAt);
  return {
    workers,
    durationMs,
    sections: counted.length,
    sectionsPerSecond: counted.length / (durationMs / 1000),
    gap: summarize(gaps),
    gapToOther: summarize(toOther),
    barged: gaps.length === 0 ? 0 : barged / gaps.length,
    toWaiting: gaps.length === 0 ? 1 : toWaiting / gaps.length,
    jain: jainIndex(perWorker),
    wait: summarize(counted.map((s) => ms(s.acquired - s.requested))),
    waitAfterFirst: summarize(
      counted.filter((s) => !firsts.has(s)).map((s) => ms(s.acquired - s.requested)),
    ),
    release: summarize(counted.map((s) => ms(s.released - s.releasing))),
    held: summarize(counted.map((s) => ms(s.releasing - s.acquired))),
    perWorkerMin: Math.min(...perWorker),
    perWorkerMax: Math.max(...perWorker),
    starved: perWorker.filter((count) => count === 0).length,
    overlaps,
    errors: outcomes.flatMap((o) => o.errors),
    ...(toMessage.length === 0
      ? {}
      : {
          trace: {
            releaseToMessage: summarize(toMessage),
            messageToAcquired: summarize(messageToAcquired),
          },
        }),
  };
}

/** Jain's fairness index: (Σx)² / (n·Σx²), 1 when every share is equal, 1/n when one has all. */
export function jainIndex(shares: readonly number[]): number {
  const sum = shares.reduce((a, b) => a + b, 0);
  const squares = shares.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 1 : (sum * sum) / (shares.length * squares);
}
