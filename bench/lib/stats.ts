/** Small statistics and formatting helpers for the benchmark. */

/** Monotonic nanoseconds, comparable across processes on one machine (CLOCK_MONOTONIC). */
export const hr = (): bigint => process.hrtime.bigint();

/** Nanoseconds to milliseconds. */
export const ms = (ns: bigint): number => Number(ns) / 1e6;

export interface Summary {
  readonly n: number;
  readonly mean: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Nearest-rank percentile of an ascending array (NaN when empty). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? NaN;
}

/** The median (the mean of the two middle values for an even count; NaN when empty). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  if (sorted.length === 0) return NaN;
  return Number.isInteger(mid)
    ? ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2
    : (sorted[Math.floor(mid)] ?? NaN);
}

export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  const sum = sorted.reduce((total, value) => total + value, 0);
  return {
    n: sorted.length,
    mean: sorted.length === 0 ? NaN : sum / sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.at(-1) ?? NaN,
  };
}

/** A number with `digits` decimals, thousands separated; '—' for NaN/undefined. */
export function fmt(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return '—';
  return value.toLocaleString('en-US', {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** A ratio as `1.23x` ('—' when undefined). */
export function ratio(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '—' : `${fmt(value, 2)}x`;
}

/** A markdown table. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  const rule = headers.map((_, index) => (index === 0 ? '---' : '--:'));
  return [line(headers), line(rule), ...rows.map(line)].join('\n');
}

/** Busy-free sleep (setTimeout based). */
export const sleep = (millis: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, millis));

/** Sleeps until the monotonic clock reaches `at` (ns). */
export async function sleepUntil(at: bigint): Promise<void> {
  const left = ms(at - hr());
  if (left > 0) await sleep(left);
}
