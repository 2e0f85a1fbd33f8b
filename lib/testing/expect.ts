/**
 * The assertions of the contract kit: a small `expect()` on `node:assert`, so that the suite runs
 * under any runner (node:test, Vitest, Jest) and fails with an `AssertionError` the runner shows.
 * Only the matchers the suite uses; not part of the public API.
 */
import { AssertionError, deepStrictEqual, notStrictEqual, strictEqual } from 'node:assert/strict';

const ANY_ORDER = Symbol('arrayContaining');

/** `expect.arrayContaining(items)`: an array holding at least these items (compared with ===). */
interface ArrayContaining {
  readonly [ANY_ORDER]: readonly unknown[];
}

function fail(
  message: string,
  label: string | undefined,
  actual: unknown,
  expected: unknown,
): never {
  throw new AssertionError({
    message: label === undefined ? message : `${label}: ${message}`,
    actual,
    expected,
  });
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value instanceof Error) return `${value.constructor.name}(${JSON.stringify(value.message)})`;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

type Constructor = abstract new (...args: never[]) => unknown;

export interface Matchers {
  toBe(expected: unknown): void;
  toEqual(expected: unknown): void;
  /** The properties of `expected` are in `actual`, equal (deeply); others may be there too. */
  toMatchObject(expected: Record<string, unknown>): void;
  toBeUndefined(): void;
  toBeDefined(): void;
  toBeNull(): void;
  toBeInstanceOf(type: Constructor): void;
  toContain(item: unknown): void;
  toMatch(pattern: RegExp): void;
  toHaveLength(length: number): void;
  toBeGreaterThan(bound: number | bigint): void;
  toBeGreaterThanOrEqual(bound: number): void;
  toBeLessThan(bound: number): void;
  toBeLessThanOrEqual(bound: number): void;
}

export interface Expectation extends Matchers {
  readonly not: Pick<Matchers, 'toBe' | 'toBeInstanceOf'>;
}

function numberOf(value: unknown, label: string | undefined): number | bigint {
  if (typeof value !== 'number' && typeof value !== 'bigint') {
    fail(`expected a number, got ${show(value)}`, label, value, 0);
  }
  return value;
}

function matchesContaining(actual: unknown, expected: unknown): boolean {
  if (typeof expected !== 'object' || expected === null || !(ANY_ORDER in expected)) return false;
  const items = (expected as ArrayContaining)[ANY_ORDER];
  return Array.isArray(actual) && items.every((item) => actual.includes(item));
}

function expectValue(actual: unknown, label?: string): Expectation {
  return {
    toBe(expected) {
      if (!Object.is(actual, expected)) {
        fail(`expected ${show(actual)} to be ${show(expected)}`, label, actual, expected);
      }
    },
    toEqual(expected) {
      if (matchesContaining(actual, expected)) return;
      if (typeof expected === 'object' && expected !== null && ANY_ORDER in expected) {
        const items = (expected as ArrayContaining)[ANY_ORDER];
        fail(`expected ${show(actual)} to contain ${show(items)}`, label, actual, items);
      }
      try {
        deepStrictEqual(actual, expected);
      } catch {
        fail(`expected ${show(actual)} to equal ${show(expected)}`, label, actual, expected);
      }
    },
    toMatchObject(expected) {
      const picked =
        typeof actual === 'object' && actual !== null
          ? Object.fromEntries(
              Object.keys(expected).map((key) => [key, (actual as Record<string, unknown>)[key]]),
            )
          : actual;
      try {
        deepStrictEqual(picked, { ...expected });
      } catch {
        fail(`expected ${show(actual)} to match ${show(expected)}`, label, actual, expected);
      }
    },
    toBeUndefined() {
      if (actual !== undefined)
        fail(`expected ${show(actual)} to be undefined`, label, actual, undefined);
    },
    toBeDefined() {
      if (actual === undefined) fail('expected a value, got undefined', label, actual, 'a value');
    },
    toBeNull() {
      if (actual !== null) fail(`expected ${show(actual)} to be null`, label, actual, null);
    },
    toBeInstanceOf(type) {
      if (!(actual instanceof type)) {
        fail(
          `expected ${show(actual)} to be an instance of ${type.name}`,
          label,
          actual,
          type.name,
        );
      }
    },
    toContain(item) {
      const ok =
        typeof actual === 'string'
          ? typeof item === 'string' && actual.includes(item)
          : Array.isArray(actual) && actual.includes(item);
      if (!ok) fail(`expected ${show(actual)} to contain ${show(item)}`, label, actual, item);
    },
    toMatch(pattern) {
      if (typeof actual !== 'string' || !pattern.test(actual)) {
        fail(`expected ${show(actual)} to match ${String(pattern)}`, label, actual, pattern);
      }
    },
    toHaveLength(length) {
      const actualLength = (actual as { length?: unknown } | null | undefined)?.length;
      strictEqual(actualLength, length, `${label ?? 'length'}: expected length ${length}`);
    },
    toBeGreaterThan(bound) {
      const n = numberOf(actual, label);
      if (!(n > bound)) fail(`expected ${n} to be greater than ${bound}`, label, n, bound);
    },
    toBeGreaterThanOrEqual(bound) {
      const n = numberOf(actual, label);
      if (!(n >= bound)) fail(`expected ${n} to be at least ${bound}`, label, n, bound);
    },
    toBeLessThan(bound) {
      const n = numberOf(actual, label);
      if (!(n < bound)) fail(`expected ${n} to be less than ${bound}`, label, n, bound);
    },
    toBeLessThanOrEqual(bound) {
      const n = numberOf(actual, label);
      if (!(n <= bound)) fail(`expected ${n} to be at most ${bound}`, label, n, bound);
    },
    not: {
      toBe(expected) {
        notStrictEqual(actual, expected, label);
      },
      toBeInstanceOf(type) {
        if (actual instanceof type) {
          fail(`expected ${show(actual)} not to be a ${type.name}`, label, actual, type.name);
        }
      },
    },
  };
}

/** Asserts on `actual`; `label` prefixes the failure message. */
export const expect = Object.assign(expectValue, {
  /** Matches an array that holds at least `items` (in `toEqual`). */
  arrayContaining(items: readonly unknown[]): ArrayContaining {
    return { [ANY_ORDER]: items };
  },
  /** Fails at once. */
  unreachable(message = 'this line should not be reached'): never {
    return fail(message, undefined, undefined, undefined);
  },
});
