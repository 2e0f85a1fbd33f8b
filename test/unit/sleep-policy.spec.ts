/**
 * The sleep policy as a pure function: how long a waiting acquire sleeps before its next attempt,
 * from the facts of the last refusal. `random` is injected, so every value is exact.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FALLBACK_POLL,
  KEPT_LINE_POLL,
  sleepBeforeNextAttempt,
  type WaitFacts,
} from '../../lib/core/wait-session.js';

const FAR = 1_000_000; // a deadline far enough not to bound anything
const fixed = (r: number) => () => r;
const polling = (facts: Partial<WaitFacts> = {}): WaitFacts => ({
  remaining: FAR,
  retryInterval: 100,
  pushed: false,
  ...facts,
});
const pushed = (facts: Partial<WaitFacts> = {}): WaitFacts => polling({ pushed: true, ...facts });

/** The largest double below 1: what `Math.random()` can return at most. */
const ALMOST_ONE = 1 - Number.EPSILON / 2;

describe('sleepBeforeNextAttempt: polling', () => {
  it('sleeps retryInterval × (0.5 + random / 2): 50 % to 100 % of it', () => {
    expect(sleepBeforeNextAttempt(polling(), fixed(0))).toBe(50);
    expect(sleepBeforeNextAttempt(polling(), fixed(0.5))).toBe(75);
    expect(sleepBeforeNextAttempt(polling({ retryInterval: 1_000 }), fixed(0.25))).toBe(625);
    // random < 1, but 0.5 + random / 2 may round to 1: the top is reached, never passed
    expect(sleepBeforeNextAttempt(polling(), fixed(ALMOST_ONE))).toBe(100);
  });

  it('stays within [50 %, 100 %] of retryInterval for every random in [0, 1)', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: ALMOST_ONE, noNaN: true }),
        fc.integer({ min: 1, max: 100_000 }),
        (r, retryInterval) => {
          const ms = sleepBeforeNextAttempt(polling({ retryInterval }), fixed(r));
          expect(ms).toBeGreaterThanOrEqual(retryInterval / 2);
          expect(ms).toBeLessThanOrEqual(retryInterval);
        },
      ),
    );
  });

  it('uses Math.random by default', () => {
    const ms = sleepBeforeNextAttempt(polling());
    expect(ms).toBeGreaterThanOrEqual(50);
    expect(ms).toBeLessThanOrEqual(100);
  });

  it('ignores the place in line (only a pushed waiter uses it)', () => {
    expect(sleepBeforeNextAttempt(polling({ position: 3 }), fixed(0.5))).toBe(75);
  });
});

describe('sleepBeforeNextAttempt: pushed (waiting for a wake-up)', () => {
  it('falls back to a poll after 2000 ms × (0.9 + random × 0.2), ±10 %', () => {
    expect(FALLBACK_POLL).toBe(2_000);
    expect(sleepBeforeNextAttempt(pushed(), fixed(0.5))).toBe(2_000);
    expect(sleepBeforeNextAttempt(pushed(), fixed(0))).toBe(1_800);
    expect(sleepBeforeNextAttempt(pushed(), fixed(ALMOST_ONE))).toBeCloseTo(2_200, 6);
  });

  it('polls less often further back in line: doubling per place ahead, at most 30 s', () => {
    const at = (position: number | undefined) =>
      sleepBeforeNextAttempt(pushed({ position }), fixed(0.5));
    expect(at(undefined)).toBe(2_000);
    expect(at(0)).toBe(2_000);
    expect(at(1)).toBe(4_000);
    expect(at(2)).toBe(8_000);
    expect(at(3)).toBe(16_000);
    expect(at(4)).toBe(30_000); // 32 s capped
    expect(at(5)).toBe(30_000);
    expect(at(1_000)).toBe(30_000);
    expect(at(Number.MAX_SAFE_INTEGER)).toBe(30_000);
    expect(at(-3)).toBe(2_000); // a nonsense place counts as next in line
  });

  it('keeps a Redis line alive: even the last of many waiters polls within 33 s (its queue expires 60 s after the last attempt)', () => {
    const slowest = sleepBeforeNextAttempt(pushed({ position: 10_000 }), fixed(ALMOST_ONE));
    expect(slowest).toBeCloseTo(33_000, 6);
    expect(slowest).toBeLessThan(60_000 / 1.8);
  });

  it('20 waiters behind a held lock make about 1.5 attempts a second together (was 2.6 with 2 s × (1 + place), at most 10 s)', () => {
    let perSecond = 0;
    for (let position = 0; position < 20; position++) {
      perSecond += 1_000 / sleepBeforeNextAttempt(pushed({ position }), fixed(0.5));
    }
    expect(perSecond).toBeCloseTo(0.5 + 0.25 + 0.125 + 0.0625 + 16 / 30, 6);
    expect(perSecond).toBeLessThan(1.5);
  });

  it('ignores retryInterval', () => {
    expect(sleepBeforeNextAttempt(pushed({ retryInterval: 5 }), fixed(0.5))).toBe(2_000);
  });

  it('stays within ±10 % of the fallback poll for every random and place', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: ALMOST_ONE, noNaN: true }),
        fc.integer({ min: 0, max: 50 }),
        (r, position) => {
          const base = Math.min(FALLBACK_POLL * 2 ** Math.min(position, 5), 30_000);
          const ms = sleepBeforeNextAttempt(pushed({ position }), fixed(r));
          expect(ms).toBeGreaterThanOrEqual(base * 0.9 - 1e-9);
          expect(ms).toBeLessThanOrEqual(base * 1.1 + 1e-9);
        },
      ),
    );
  });
});

describe('sleepBeforeNextAttempt: pushed, the server keeps the place (keptInLine: a Redis lock)', () => {
  const kept = (facts: Partial<WaitFacts> = {}): WaitFacts =>
    pushed({ keptInLine: true, ...facts });
  const at = (position: number | undefined, r = 0.5) =>
    sleepBeforeNextAttempt(kept({ position }), fixed(r));

  it('the first in line falls back to a poll after 5 s ± 10 % (only a lost grant needs it)', () => {
    expect(KEPT_LINE_POLL).toBe(5_000);
    expect(at(0)).toBe(5_000);
    expect(at(undefined)).toBe(5_000);
    expect(at(0, 0)).toBe(4_500);
    expect(at(0, ALMOST_ONE)).toBeCloseTo(5_500, 6);
  });

  it('further back: 4 times as long per place ahead, at most 5 min', () => {
    expect(at(1)).toBe(20_000);
    expect(at(2)).toBe(80_000);
    expect(at(3)).toBe(300_000); // 320 s capped
    expect(at(1_000)).toBe(300_000);
    expect(at(Number.MAX_SAFE_INTEGER)).toBe(300_000);
    expect(at(-3)).toBe(5_000);
  });

  it('keptInLine false or absent: the place-keeping policy (2 s doubling, at most 30 s)', () => {
    expect(sleepBeforeNextAttempt(pushed({ keptInLine: false, position: 9 }), fixed(0.5))).toBe(
      30_000,
    );
    expect(sleepBeforeNextAttempt(pushed({ position: 9 }), fixed(0.5))).toBe(30_000);
  });

  it('a polling waiter ignores it', () => {
    expect(sleepBeforeNextAttempt(polling({ keptInLine: true }), fixed(0.5))).toBe(75);
  });

  it("still wakes at the holder's TTL and to renew its place (a holder without expiry)", () => {
    expect(sleepBeforeNextAttempt(kept({ position: 7, holderTtl: 60_000 }), fixed(0.5))).toBe(
      60_001,
    );
    expect(
      sleepBeforeNextAttempt(kept({ position: 7, holderTtl: -1, renewWithin: 30_000 }), fixed(0.5)),
    ).toBe(30_000);
    expect(sleepBeforeNextAttempt(kept({ position: 7, remaining: 900 }), fixed(0.5))).toBe(900);
  });

  it('20 waiters behind a held lock make about 0.32 attempts a second together (1.47 when each must keep the line)', () => {
    let perSecond = 0;
    for (let position = 0; position < 20; position++) {
      perSecond += 1_000 / at(position);
    }
    expect(perSecond).toBeCloseTo(0.2 + 0.05 + 0.0125 + 17 / 300, 6);
    expect(perSecond).toBeLessThan(0.33);
  });
});

describe('sleepBeforeNextAttempt: bounds', () => {
  it('wakes 1 ms after the holder TTL runs out', () => {
    expect(sleepBeforeNextAttempt(pushed({ holderTtl: 300 }), fixed(0.5))).toBe(301);
    expect(sleepBeforeNextAttempt(polling({ holderTtl: 10 }), fixed(0.5))).toBe(11);
    expect(sleepBeforeNextAttempt(polling({ holderTtl: 0 }), fixed(0.5))).toBe(1);
    // a TTL longer than the sleep does not lengthen it
    expect(sleepBeforeNextAttempt(polling({ holderTtl: 5_000 }), fixed(0.5))).toBe(75);
  });

  it('ignores a holder TTL of -1 (no expiry)', () => {
    expect(sleepBeforeNextAttempt(polling({ holderTtl: -1 }), fixed(0.5))).toBe(75);
    expect(sleepBeforeNextAttempt(pushed({ holderTtl: -1 }), fixed(0.5))).toBe(2_000);
  });

  it('wakes in time to renew the place in line', () => {
    expect(sleepBeforeNextAttempt(pushed({ renewWithin: 40 }), fixed(0.5))).toBe(40);
    expect(sleepBeforeNextAttempt(pushed({ renewWithin: 0 }), fixed(0.5))).toBe(0);
    expect(sleepBeforeNextAttempt(polling({ renewWithin: 500 }), fixed(0.5))).toBe(75);
  });

  it('takes the smallest of TTL + 1, renewWithin and the time remaining', () => {
    const facts = { holderTtl: 300, renewWithin: 200, remaining: 100 };
    expect(sleepBeforeNextAttempt(pushed(facts), fixed(0.5))).toBe(100);
    expect(sleepBeforeNextAttempt(pushed({ ...facts, remaining: 250 }), fixed(0.5))).toBe(200);
    expect(
      sleepBeforeNextAttempt(pushed({ ...facts, remaining: FAR, renewWithin: 900 }), fixed(0.5)),
    ).toBe(301);
  });

  it('never sleeps past the deadline, and never a negative time', () => {
    expect(sleepBeforeNextAttempt(polling({ remaining: 20 }), fixed(0.5))).toBe(20);
    expect(sleepBeforeNextAttempt(polling({ remaining: 0 }), fixed(0.5))).toBe(0);
    expect(sleepBeforeNextAttempt(polling({ remaining: -5 }), fixed(0.5))).toBe(0);
    expect(sleepBeforeNextAttempt(polling({ retryInterval: 0 }), fixed(0.5))).toBe(0);
    expect(sleepBeforeNextAttempt(pushed({ renewWithin: -10 }), fixed(0.5))).toBe(0);
  });

  it('is within [0, max(0, remaining)] for any facts', () => {
    const facts = fc.record({
      remaining: fc.integer({ min: -10_000, max: 100_000 }),
      retryInterval: fc.integer({ min: 0, max: 100_000 }),
      pushed: fc.boolean(),
      holderTtl: fc.option(fc.integer({ min: -1, max: 100_000 }), { nil: undefined }),
      position: fc.option(fc.integer({ min: -5, max: 100 }), { nil: undefined }),
      renewWithin: fc.option(fc.integer({ min: 0, max: 100_000 }), { nil: undefined }),
      keptInLine: fc.option(fc.boolean(), { nil: undefined }),
    });
    fc.assert(
      fc.property(facts, fc.double({ min: 0, max: ALMOST_ONE, noNaN: true }), (f, r) => {
        const ms = sleepBeforeNextAttempt(f, fixed(r));
        expect(ms).toBeGreaterThanOrEqual(0);
        expect(ms).toBeLessThanOrEqual(Math.max(0, f.remaining));
        if (f.holderTtl !== undefined && f.holderTtl >= 0) {
          expect(ms).toBeLessThanOrEqual(f.holderTtl + 1);
        }
        if (f.renewWithin !== undefined) expect(ms).toBeLessThanOrEqual(f.renewWithin);
      }),
    );
  });
});
