/**
 * The safety checker: given every section the workers recorded (one lock), and the final value
 * of the shared counter, finds
 * - overlaps: a section that started before the previous holder's section ended, where that
 *   holder had NOT been told its lock was lost before the new one started (its signal had not
 *   aborted): two holders that both believed they held the lock. A section whose signal aborted
 *   before the next one started is a *signalled* loss, counted apart: the library kept its word;
 * - token regressions: fencing tokens that did not strictly increase in holding order;
 * - lost updates: sections that wrote the counter, minus the counter's final value.
 *
 * A section that has a `begin` record but no `section` record was cut: its worker process died
 * inside it (SIGKILLed by the harness). It counts as held from its start until its process was
 * seen dead (the harness passes each worker's exit time), with no loss signal: a section that
 * starts before that is an overlap, and tokens must increase across it. Whether it wrote the
 * counter is unknown, so the counter must lie between the sections that wrote it and that number
 * plus the cut sections.
 */
import type { WorkerRecord } from './worker.js';

type Section = Extract<WorkerRecord, { kind: 'section' }>;
type Begin = Extract<WorkerRecord, { kind: 'begin' }>;

/** When a worker process was seen dead (its exit, observed by the harness), wall-clock ms. */
export interface WorkerExit {
  readonly worker: number;
  readonly at: number;
}

/** A stretch during which a worker held (or may have held) the lock. */
interface Held {
  readonly worker: number;
  readonly start: number;
  readonly end: number;
  readonly token: string | undefined;
  readonly lostAt?: number | undefined;
  /** Cut by the death of its process: `end` is when the process was seen dead. */
  readonly cut: boolean;
}

export interface ChaosReport {
  /** Sections that ran to their end (their `section` record). */
  readonly sections: number;
  /** Sections cut by the death of their process (a `begin` without a `section` record). */
  readonly cutSections: number;
  readonly overlaps: number;
  readonly signalledLosses: number;
  readonly tokenRegressions: number;
  /**
   * How far the counter lies outside [sections that wrote, that + cut sections]: positive when
   * below (updates lost), negative when above (more writes than sections could make); 0 inside.
   * Without cut sections: sections that wrote minus the counter.
   */
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

export function check(
  records: readonly WorkerRecord[],
  counter: number,
  exits: readonly WorkerExit[] = [],
): ChaosReport {
  const sections = records.filter((r): r is Section => r.kind === 'section');
  const finished = new Set(sections.map((s) => `${s.worker}:${s.start}`));
  const diedAt = new Map(exits.map((e) => [e.worker, e.at]));
  const cut: Held[] = records
    .filter((r): r is Begin => r.kind === 'begin' && !finished.has(`${r.worker}:${r.start}`))
    .map((b) => ({
      worker: b.worker,
      start: b.start,
      // Not seen dead: it may still be inside (the most cautious end).
      end: diedAt.get(b.worker) ?? Infinity,
      token: b.token,
      cut: true,
    }));
  const held: Held[] = [...sections.map((s) => ({ ...s, cut: false })), ...cut].sort(
    (a, b) => a.start - b.start,
  );
  const examples: string[] = [];
  const note = (text: string) => {
    if (examples.length < 5) examples.push(text);
  };
  const ending = (h: Held) =>
    h.cut
      ? `its process was seen dead at ${h.end.toFixed(1)}`
      : `it held it until ${h.end.toFixed(1)}`;
  let overlaps = 0;
  let signalledLosses = 0;
  let tokenRegressions = 0;
  // The section with the latest end so far: the one any new section must not overlap.
  let latest: Held | undefined;
  let previous: Held | undefined;
  for (const section of held) {
    if (latest && section.start < latest.end) {
      if (latest.lostAt !== undefined && latest.lostAt <= section.start) {
        signalledLosses++;
      } else if (!latest.cut) {
        overlaps++;
        note(
          `overlap: worker ${section.worker} started at ${section.start.toFixed(1)} while worker ${latest.worker} held it until ${latest.end.toFixed(1)} (lost signal: ${latest.lostAt?.toFixed(1) ?? 'none'})`,
        );
      } else {
        overlaps++;
        note(
          `overlap: worker ${section.worker} started at ${section.start.toFixed(1)} inside worker ${latest.worker}'s cut section (started at ${latest.start.toFixed(1)}, ${ending(latest)})`,
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
  const maybeWrote = wrote + cut.length;
  const failures = records.filter(
    (r): r is Extract<WorkerRecord, { kind: 'failure' }> => r.kind === 'failure',
  );
  const waits = records
    .filter((r): r is Extract<WorkerRecord, { kind: 'wait' }> => r.kind === 'wait')
    .map((r) => r.ms);
  const lostUpdates =
    counter < wrote ? wrote - counter : counter > maybeWrote ? maybeWrote - counter : 0;
  if (lostUpdates !== 0) {
    note(
      cut.length === 0
        ? `counter ${counter}, but ${wrote} sections wrote it`
        : `counter ${counter}, but ${wrote} sections wrote it and ${cut.length} cut sections may have`,
    );
  }
  return {
    sections: sections.length,
    cutSections: cut.length,
    overlaps,
    signalledLosses,
    tokenRegressions,
    lostUpdates,
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
