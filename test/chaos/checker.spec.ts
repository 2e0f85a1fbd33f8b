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
});
