/** The checker itself, on hand-made records: it must catch what it is there to catch. */
import { describe, expect, it } from 'vitest';

import { check, grantedDuring } from './checker.js';
import type { WorkerRecord } from './worker.js';

const section = (
  worker: number,
  start: number,
  end: number,
  token: string,
  extra: { wrote?: boolean; lostAt?: number } = {},
): WorkerRecord => ({
  kind: 'section',
  worker,
  start,
  end,
  token,
  wrote: extra.wrote ?? true,
  released: true,
  ...(extra.lostAt === undefined ? {} : { lostAt: extra.lostAt }),
});

/** The record a worker writes when its section starts (followed by a `section` record at its end). */
const begin = (worker: number, start: number, token: string): WorkerRecord => ({
  kind: 'begin',
  worker,
  start,
  token,
});

/** A finished section with its begin record, as the worker writes them. */
const withBegin = (
  worker: number,
  start: number,
  end: number,
  token: string,
  extra: { wrote?: boolean; lostAt?: number } = {},
): WorkerRecord[] => [begin(worker, start, token), section(worker, start, end, token, extra)];

describe('the chaos checker', () => {
  it('passes sections one after another, with increasing tokens and an exact counter', () => {
    const records = [section(0, 0, 10, '1'), section(1, 11, 20, '2'), section(0, 20, 30, '3')];
    const report = check(records, 3);
    expect(report).toMatchObject({ sections: 3, overlaps: 0, tokenRegressions: 0, lostUpdates: 0 });
  });

  it('finds an overlap (records given out of order), also one nested inside a long section', () => {
    const records = [section(1, 5, 15, '2'), section(0, 0, 10, '1')];
    expect(check(records, 2).overlaps).toBe(1);
    const nested = [section(0, 0, 100, '1'), section(1, 101, 102, '2'), section(2, 50, 60, '3')];
    const report = check(nested, 3);
    expect(report.overlaps).toBe(1);
    expect(report.examples.join('\n')).toMatch(/worker 2 started at 50/);
  });

  it('counts a holder told of its loss (signal aborted) before the next start as a signalled loss, not an overlap; told too late, it is an overlap', () => {
    const told = [section(0, 0, 50, '1', { lostAt: 20, wrote: false }), section(1, 30, 40, '2')];
    expect(check(told, 1)).toMatchObject({ overlaps: 0, signalledLosses: 1, lostUpdates: 0 });
    const late = [section(0, 0, 50, '1', { lostAt: 35, wrote: false }), section(1, 30, 40, '2')];
    expect(check(late, 1)).toMatchObject({ overlaps: 1, signalledLosses: 0 });
  });

  it('finds fencing tokens that do not strictly increase in holding order', () => {
    const records = [section(0, 0, 10, '5'), section(1, 11, 20, '5'), section(0, 21, 30, '4')];
    expect(check(records, 3).tokenRegressions).toBe(2);
    // Compared as BigInt, not as text or as doubles.
    const big = [section(0, 0, 1, '9007199254740993'), section(1, 2, 3, '9007199254740994')];
    expect(check(big, 2).tokenRegressions).toBe(0);
  });

  it('finds lost updates: more sections wrote than the counter holds', () => {
    const records = [section(0, 0, 10, '1'), section(1, 11, 20, '2')];
    expect(check(records, 1).lostUpdates).toBe(1);
  });

  it('lists the sections granted inside a window (e.g. while the server was down)', () => {
    const records = [section(0, 0, 10, '1'), section(1, 15, 20, '2'), section(0, 30, 40, '3')];
    expect(grantedDuring(records, 12, 25).map((s) => s.start)).toEqual([15]);
  });

  describe('sections cut by the death of their process (a begin without a section record)', () => {
    it('ignores the begin records of finished sections: the same report as without them', () => {
      const records = [
        ...withBegin(0, 0, 10, '1'),
        ...withBegin(1, 11, 20, '2'),
        ...withBegin(0, 20, 30, '3'),
      ];
      expect(check(records, 3, [{ worker: 0, at: 31 }])).toMatchObject({
        sections: 3,
        cutSections: 0,
        overlaps: 0,
        tokenRegressions: 0,
        lostUpdates: 0,
      });
      const overlapping = [...withBegin(1, 5, 15, '2'), ...withBegin(0, 0, 10, '1')];
      expect(check(overlapping, 2)).toMatchObject({ overlaps: 1, cutSections: 0 });
    });

    it('finds a section that started before the cut holder was seen dead: an overlap', () => {
      // Worker 0 was granted at 0 and died at 50; worker 1 was granted at 30.
      const records = [begin(0, 0, '1'), ...withBegin(1, 30, 40, '2')];
      const report = check(records, 1, [{ worker: 0, at: 50 }]);
      expect(report).toMatchObject({ sections: 1, cutSections: 1, overlaps: 1 });
      expect(report.examples.join('\n')).toMatch(
        /worker 1 started at 30\.0 inside worker 0's cut section .*seen dead at 50\.0/,
      );
      // Nested: a long cut section, a section inside it after a clean one.
      const nested = [
        begin(0, 0, '1'),
        ...withBegin(1, 2_100, 2_110, '2'),
        ...withBegin(2, 1_000, 1_010, '3'),
      ];
      expect(check(nested, 2, [{ worker: 0, at: 2_050 }]).overlaps).toBe(1);
    });

    it('passes a section that started after the cut holder was seen dead (after its expiry); tokens must still increase across it', () => {
      const records = [
        ...withBegin(0, 0, 10, '1'),
        begin(1, 11, '2'),
        ...withBegin(2, 2_020, 2_030, '3'),
        ...withBegin(3, 2_031, 2_040, '4'),
      ];
      expect(check(records, 3, [{ worker: 1, at: 15 }])).toMatchObject({
        sections: 3,
        cutSections: 1,
        overlaps: 0,
        signalledLosses: 0,
        tokenRegressions: 0,
        lostUpdates: 0,
      });
      // The cut section's token counts in the holding order: the next one must be higher.
      const regressed = [begin(0, 0, '5'), ...withBegin(1, 2_020, 2_030, '5')];
      const report = check(regressed, 1, [{ worker: 0, at: 15 }]);
      expect(report).toMatchObject({ overlaps: 0, tokenRegressions: 1 });
      expect(report.examples.join('\n')).toMatch(/token 5 \(worker 1\) after 5/);
    });

    it('treats a cut section whose process was never seen dead as still running', () => {
      const records = [begin(0, 0, '1'), ...withBegin(1, 60_000, 60_010, '2')];
      expect(check(records, 1).overlaps).toBe(1);
      expect(check(records, 1, [{ worker: 1, at: 60_020 }]).overlaps).toBe(1);
      expect(check(records, 1, [{ worker: 0, at: 10 }]).overlaps).toBe(0);
    });

    it('bounds the counter: at least the sections that wrote, at most that plus the cut sections (each may have written)', () => {
      // Two sections wrote; two were cut (worker 1 and worker 3), each maybe after writing.
      const records = [
        ...withBegin(0, 0, 10, '1'),
        begin(1, 11, '2'),
        ...withBegin(2, 3_000, 3_010, '3'),
        begin(3, 3_011, '4'),
        ...withBegin(4, 6_000, 6_010, '5', { wrote: false }),
      ];
      const exits = [
        { worker: 1, at: 12 },
        { worker: 3, at: 3_012 },
      ];
      for (const counter of [2, 3, 4]) {
        const report = check(records, counter, exits);
        expect(report, `counter ${counter}`).toMatchObject({
          sections: 3,
          cutSections: 2,
          lostUpdates: 0,
        });
        expect(report.examples).toEqual([]);
      }
      // Below: updates lost, even though cut sections may have written nothing.
      const below = check(records, 1, exits);
      expect(below.lostUpdates).toBe(1);
      expect(below.examples.join('\n')).toMatch(/counter 1, but 2 sections wrote it and 2 cut/);
      // Above: more writes than any section could have made.
      expect(check(records, 5, exits).lostUpdates).toBe(-1);
    });

    it('without cut sections, the counter must be exact, as before (above it: a negative count)', () => {
      const records = [...withBegin(0, 0, 10, '1'), ...withBegin(1, 11, 20, '2')];
      expect(check(records, 2).lostUpdates).toBe(0);
      expect(check(records, 1).lostUpdates).toBe(1);
      expect(check(records, 3).lostUpdates).toBe(-1);
      expect(check(records, 3).examples).toEqual(['counter 3, but 2 sections wrote it']);
    });
  });
});
