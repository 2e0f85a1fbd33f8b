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

/** What `checkShared` adds to a report: how many held at once, at most. */
export interface SharedReport extends ChaosReport {
  /** Most holders at once (permits; for a read-write lock, readers). */
  readonly maxHolders: number;
  /** The semaphore's limit, if one was checked. */
  readonly limit?: number;
  /** Sections that held the write side (read-write lock). */
  readonly writeSections?: number;
}

/**
 * The invariants of the shared primitives, over every section the workers recorded:
 * - a semaphore (`limit` given): at most `limit` holders at once;
 * - a read-write lock (sections with `mode` 'read' / 'write'): no writer at once with a reader or
 *   another writer.
 * Each section counts as held from its start to its end or, if its loss signal aborted before,
 * to that moment (from then on its holder knew: a *signalled* loss, counted apart); a cut
 * section (its process SIGKILLed inside it) until its process was seen dead. A section that
 * breaks an invariant only with the holders' signalled losses counted in is a signalled loss;
 * one that breaks it with the known holders alone is an overlap. The counter written by writers
 * is checked as in `check` (lost updates).
 */
export function checkShared(
  records: readonly WorkerRecord[],
  counter: number,
  exits: readonly WorkerExit[] = [],
  limit?: number,
): SharedReport {
  const sections = records.filter((r): r is Section => r.kind === 'section');
  const finished = new Set(sections.map((s) => `${s.worker}:${s.start}`));
  const diedAt = new Map(exits.map((e) => [e.worker, e.at]));
  interface Stretch {
    readonly worker: number;
    readonly start: number;
    /** Until when its holder believed it held (its end, or its loss signal). */
    readonly known: number;
    /** Until when it may have been used (its end, whatever the signal said). */
    readonly end: number;
    readonly write: boolean;
    readonly cut: boolean;
  }
  const stretches: Stretch[] = [
    ...sections.map((s) => ({
      worker: s.worker,
      start: s.start,
      known: s.lostAt !== undefined ? Math.min(s.lostAt, s.end) : s.end,
      end: s.end,
      write: s.mode === 'write',
      cut: false,
    })),
    ...records
      .filter((r): r is Begin => r.kind === 'begin' && !finished.has(`${r.worker}:${r.start}`))
      .map((b) => {
        const end = diedAt.get(b.worker) ?? Infinity;
        return {
          worker: b.worker,
          start: b.start,
          known: end,
          end,
          write: b.mode === 'write',
          cut: true,
        };
      }),
  ].sort((a, b) => a.start - b.start);
  const examples: string[] = [];
  const note = (text: string) => {
    if (examples.length < 5) examples.push(text);
  };
  /** Whether `next` may not start next to `holders`. */
  const breaks = (holders: readonly Stretch[], next: Stretch) =>
    limit !== undefined
      ? holders.length + 1 > limit
      : holders.length > 0 && (next.write || holders.some((h) => h.write));
  let overlaps = 0;
  let signalledLosses = 0;
  let maxHolders = 0;
  let active: Stretch[] = [];
  for (const next of stretches) {
    active = active.filter((h) => h.end > next.start);
    const known = active.filter((h) => h.known > next.start);
    if (breaks(known, next)) {
      overlaps++;
      note(
        `${next.write ? 'writer' : limit !== undefined ? 'holder' : 'reader'} ${next.worker} started at ${next.start.toFixed(1)} next to ${known
          .map(
            (h) =>
              `${h.write ? 'writer' : 'holder'} ${h.worker}${h.cut ? ' (cut)' : ''} [${h.start.toFixed(1)}, ${h.known.toFixed(1)}]`,
          )
          .join(', ')}`,
      );
    } else if (breaks(active, next)) {
      signalledLosses++;
    }
    active.push(next);
    const holding = active.filter((h) => h.known > next.start && !h.write).length;
    maxHolders = Math.max(maxHolders, holding);
  }
  const base = check(
    records.filter((r) => r.kind !== 'section' && r.kind !== 'begin'),
    counter,
    exits,
  );
  const writers = sections.filter((s) => s.mode === 'write');
  const cutWriters = stretches.filter((s) => s.cut && s.write).length;
  const wrote = writers.filter((s) => s.wrote).length;
  const lostUpdates =
    counter < wrote
      ? wrote - counter
      : counter > wrote + cutWriters
        ? wrote + cutWriters - counter
        : 0;
  if (lostUpdates !== 0) note(`counter ${counter}, but ${wrote} writer sections wrote it`);
  // Writers hold one at a time: their tokens increase in the order they held.
  let tokenRegressions = 0;
  writers
    .sort((a, b) => a.start - b.start)
    .forEach((section, i) => {
      const before = writers[i - 1]?.token;
      if (before !== undefined && section.token !== undefined) {
        if (BigInt(section.token) <= BigInt(before)) {
          tokenRegressions++;
          note(`writer token ${section.token} (worker ${section.worker}) after ${before}`);
        }
      }
    });
  return {
    ...base,
    sections: sections.length,
    cutSections: stretches.filter((s) => s.cut).length,
    overlaps,
    signalledLosses,
    tokenRegressions,
    lostUpdates,
    fencedWrites: sections.filter((s) => s.fenced === true).length,
    maxHolders,
    ...(limit !== undefined ? { limit } : { writeSections: writers.length }),
    examples,
  };
}
