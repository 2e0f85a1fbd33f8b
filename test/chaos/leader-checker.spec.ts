/**
 * The leader-election checker (test/chaos/leader-checker.ts) on made-up histories: a correct one
 * passes, and each broken rule is caught.
 */
import { describe, expect, it } from 'vitest';

import { checkLeaders, type StoreEntry } from './leader-checker.js';
import type { LeaderRecord } from './leader-worker.js';

const elected = (worker: number, term: string, at: number): LeaderRecord => ({
  kind: 'elected',
  worker,
  term,
  at,
});
const ended = (worker: number, term: string, at: number): LeaderRecord => ({
  kind: 'ended',
  worker,
  term,
  at,
  reason: 'lost',
});
const write = (
  worker: number,
  term: string,
  start: number,
  accepted = true,
  stale = false,
): LeaderRecord => ({
  kind: 'write',
  worker,
  term,
  start,
  end: start + 1,
  accepted,
  ...(stale ? { stale } : {}),
});
const entries = (...terms: [number, string][]): StoreEntry[] =>
  terms.map(([worker, term], seq) => ({ worker, term, seq }));

/** Worker 0 leads term 5 from 0 to 100 (killed at 100), worker 1 term 7 from 300. */
const healthy: LeaderRecord[] = [
  elected(0, '5', 0),
  write(0, '5', 10),
  write(0, '5', 60),
  elected(1, '7', 300),
  write(1, '7', 310),
  ended(1, '7', 500),
];
const deaths = new Map([[0, 100]]);

describe('checkLeaders', () => {
  it('passes a correct history and measures the hand-over', () => {
    const report = checkLeaders(
      healthy,
      entries([0, '5'], [0, '5'], [1, '7']),
      [{ kind: 'kill', at: 100 }],
      deaths,
      600,
    );
    expect(report).toMatchObject({
      leaderships: 2,
      duplicateTerms: 0,
      termRegressions: 0,
      observedOverlaps: 0,
      staleAccepted: 0,
      staleAcceptedByClock: 0,
      acceptedWrites: 3,
      faults: [{ kind: 'kill', resumedAfterMs: 211, newLeaderAfterMs: 200 }],
      examples: [],
    });
  });

  it('counts an overlap on the clock and a fenced stale write, without failing them', () => {
    const report = checkLeaders(
      [...healthy, ended(0, '5', 350), write(0, '5', 340, false, true)],
      entries([0, '5'], [0, '5'], [1, '7']),
      [],
      new Map(),
      600,
    );
    expect(report).toMatchObject({ observedOverlaps: 1, maxOverlapMs: 50, fencedWrites: 1 });
    expect(report.staleWritesTried).toBe(1);
    expect(report.examples).toEqual([]);
  });

  it('catches a term elected twice and a term that went back', () => {
    const report = checkLeaders(
      [...healthy, elected(2, '7', 700), elected(0, '6', 900)],
      entries(),
      [],
      deaths,
      1_000,
    );
    expect(report.duplicateTerms).toBe(1);
    expect(report.termRegressions).toBe(2);
  });

  it("catches a stale term's write accepted after a newer term's, in the store and by the clock", () => {
    const report = checkLeaders(
      [...healthy, write(0, '5', 400)],
      entries([0, '5'], [1, '7'], [0, '5']),
      [],
      new Map(),
      600,
    );
    expect(report.staleAccepted).toBe(1);
    expect(report.staleAcceptedByClock).toBe(1);
    expect(report.examples.length).toBe(2);
  });

  it('reports a fault after which no leader wrote', () => {
    const report = checkLeaders(healthy, entries(), [{ kind: 'cut', at: 400 }], new Map(), 600);
    expect(report.faults).toEqual([{ kind: 'cut', resumedAfterMs: null, newLeaderAfterMs: null }]);
  });
});
