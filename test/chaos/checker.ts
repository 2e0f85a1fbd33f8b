/**
 * The safety checker: given every section the workers recorded (one lock), and the final value
 * of the shared counter, finds
 * - overlaps: a section that started before the previous holder's section ended, where that
 *   holder had NOT been told its lock was lost before the new one started (its signal had not
 *   aborted): two holders that both believed they held the lock. A section whose signal aborted
 *   before the next one started is a *signalled* loss, counted apart: the library kept its word;
 * - token regressions: fencing tokens that did not strictly increase in holding order;
 * - lost updates: sections that wrote the counter, minus the counter's final value.
 */
import type { WorkerRecord } from './worker.js';

type Section = Extract<WorkerRecord, { kind: 'section' }>;

export interface ChaosReport {
  readonly sections: number;
  readonly overlaps: number;
  readonly signalledLosses: number;
  readonly tokenRegressions: number;
  readonly lostUpdates: number;
  /** Writes the counter store refused for a stale fencing token. */
  readonly fencedWrites: number;
  readonly timeouts: number;
  readonly backendErrors: number;
  readonly otherErrors: number;
  readonly waitP50Ms: number;
  readonly waitMaxMs: number;
  /** The first few violations, for the failure message. */
  readonly examples: readonly string[];
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? 0;
}

export function check(records: readonly WorkerRecord[], counter: number): ChaosReport {
  const sections = records
    .filter((r): r is Section => r.kind === 'section')
    .sort((a, b) => a.start - b.start);
  const examples: string[] = [];
  const note = (text: string) => {
    if (examples.length < 5) examples.push(text);
  };
  let overlaps = 0;
  let signalledLosses = 0;
  let tokenRegressions = 0;
  // The section with the latest end so far: the one any new section must not overlap.
  let latest: Section | undefined;
  let previous: Section | undefined;
  for (const section of sections) {
    if (latest && section.start < latest.end) {
      if (latest.lostAt !== undefined && latest.lostAt <= section.start) {
        signalledLosses++;
      } else {
        overlaps++;
        note(
          `overlap: worker ${section.worker} started at ${section.start.toFixed(1)} while worker ${latest.worker} held it until ${latest.end.toFixed(1)} (lost signal: ${latest.lostAt?.toFixed(1) ?? 'none'})`,
        );
      }
    }
    if (previous?.token !== undefined && section.token !== undefined) {
      if (BigInt(section.token) <= BigInt(previous.token)) {
        tokenRegressions++;
        note(`token ${section.token} (worker ${section.worker}) after ${previous.token}`);
      }
    }
    if (!latest || section.end > latest.end) latest = section;
    previous = section;
  }
  const wrote = sections.filter((s) => s.wrote).length;
  const failures = records.filter(
    (r): r is Extract<WorkerRecord, { kind: 'failure' }> => r.kind === 'failure',
  );
  const waits = records
    .filter((r): r is Extract<WorkerRecord, { kind: 'wait' }> => r.kind === 'wait')
    .map((r) => r.ms);
  if (wrote !== counter) note(`counter ${counter}, but ${wrote} sections wrote it`);
  return {
    sections: sections.length,
    overlaps,
    signalledLosses,
    tokenRegressions,
    lostUpdates: wrote - counter,
    fencedWrites: sections.filter((s) => s.fenced === true).length,
    timeouts: failures.filter((f) => f.error === 'timeout').length,
    backendErrors: failures.filter((f) => f.error === 'backend').length,
    otherErrors: failures.filter((f) => f.error === 'other').length,
    waitP50Ms: percentile(waits, 0.5),
    waitMaxMs: waits.length === 0 ? 0 : Math.max(...waits),
    examples,
  };
}

/** Sections that started (were granted) inside a window, e.g. while the server was down. */
export function grantedDuring(
  records: readonly WorkerRecord[],
  from: number,
  to: number,
): Section[] {
  return records.filter(
    (r): r is Section => r.kind === 'section' && r.start > from && r.start < to,
  );
}
