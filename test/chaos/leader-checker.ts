/**
 * Checks a leader-election chaos history (test/chaos/leader-worker.ts records, plus the fenced
 * store's log of accepted writes in its own order) against "no two leaders whose terms overlap,
 * with fencing: a stale leader's writes refused":
 *
 * - every leadership has its own term (no term elected twice);
 * - terms strictly increase in the order leaderships began (monotonic clock);
 * - the store never accepted a write of an older term after one of a newer term (its own order),
 *   nor, by the monotonic clock, a write of a term that began after a newer term's first
 *   accepted write had ended;
 * - after each fault, leadership resumed: a leader wrote again (time to it measured), and a new
 *   leader was elected where the fault ended the old one's leadership.
 *
 * Overlaps observed on the clock (a deposed leader still believing it leads while the next one
 * does) are counted, not failed: that is what fencing is for; the refused writes are counted too.
 */
import type { LeaderRecord } from './leader-worker.js';

/** A fault injected at `at` (monotonic ms); `endedAt`: when it was lifted (heal, restart, resume). */
export interface LeaderFault {
  readonly kind: string;
  readonly at: number;
  readonly endedAt?: number;
}

/** One accepted write as the store logged it. */
export interface StoreEntry {
  readonly worker: number;
  readonly term: string;
  readonly seq: number;
}

export interface Leadership {
  readonly worker: number;
  readonly term: string;
  readonly start: number;
  /** When its signal aborted, it resigned, or its process died (or the run ended). */
  readonly end: number;
}

export interface LeaderReport {
  readonly leaderships: number;
  readonly terms: readonly string[];
  /** Terms elected more than once. */
  readonly duplicateTerms: number;
  /** Leaderships whose term is not above the previous leadership's (in start order). */
  readonly termRegressions: number;
  /** Pairs of leaderships (different terms) that overlapped on the monotonic clock, and the longest, ms. */
  readonly observedOverlaps: number;
  readonly maxOverlapMs: number;
  readonly acceptedWrites: number;
  /** Writes the store refused: their term was below the last accepted one. */
  readonly fencedWrites: number;
  /** Of those, writes tried after the writer knew it had lost (staleWrite). */
  readonly staleWritesTried: number;
  /** Accepted writes of an older term after a newer term's (store order): must be 0. */
  readonly staleAccepted: number;
  /** Accepted writes of a term that started after a newer term's first accepted write ended (clock): must be 0. */
  readonly staleAcceptedByClock: number;
  /** Accepted writes in the store that no worker recorded (a worker killed mid-write). */
  readonly unrecordedAccepted: number;
  /**
   * Per fault: ms from the fault to the first accepted write of a newer term (else, the old leader
   * kept leading: the first after the fault was lifted), and to a new leader.
   */
  readonly faults: readonly {
    readonly kind: string;
    readonly resumedAfterMs: number | null;
    readonly newLeaderAfterMs: number | null;
  }[];
  readonly examples: readonly string[];
}

const below = (a: string, b: string): boolean => BigInt(a) < BigInt(b);

export function leadershipsOf(
  records: readonly LeaderRecord[],
  deaths: ReadonlyMap<number, number>,
  runEnd: number,
): Leadership[] {
  const ended = new Map<string, number>();
  for (const r of records) if (r.kind === 'ended') ended.set(`${r.worker}:${r.term}`, r.at);
  return records
    .filter((r): r is Extract<LeaderRecord, { kind: 'elected' }> => r.kind === 'elected')
    .map((r) => ({
      worker: r.worker,
      term: r.term,
      start: r.at,
      end: ended.get(`${r.worker}:${r.term}`) ?? deaths.get(r.worker) ?? runEnd,
    }))
    .sort((a, b) => a.start - b.start);
}

export function checkLeaders(
  records: readonly LeaderRecord[],
  store: readonly StoreEntry[],
  faults: readonly LeaderFault[],
  deaths: ReadonlyMap<number, number>,
  runEnd: number,
): LeaderReport {
  const examples: string[] = [];
  const note = (text: string) => {
    if (examples.length < 10) examples.push(text);
  };
  const leaderships = leadershipsOf(records, deaths, runEnd);

  const seen = new Map<string, number>();
  let duplicateTerms = 0;
  for (const { term, worker } of leaderships) {
    if (seen.has(term)) {
      duplicateTerms++;
      note(`term ${term} elected by worker ${seen.get(term)} and worker ${worker}`);
    }
    seen.set(term, worker);
  }

  let termRegressions = 0;
  for (let i = 1; i < leaderships.length; i++) {
    const [previous, next] = [leaderships[i - 1]!, leaderships[i]!];
    if (!below(previous.term, next.term)) {
      termRegressions++;
      note(`term ${next.term} (worker ${next.worker}) began after term ${previous.term}`);
    }
  }

  let observedOverlaps = 0;
  let maxOverlapMs = 0;
  for (let i = 0; i < leaderships.length; i++) {
    for (let j = i + 1; j < leaderships.length; j++) {
      const [a, b] = [leaderships[i]!, leaderships[j]!];
      const overlap = Math.min(a.end, b.end) - Math.max(a.start, b.start);
      if (a.term !== b.term && overlap > 0) {
        observedOverlaps++;
        maxOverlapMs = Math.max(maxOverlapMs, overlap);
      }
    }
  }

  // The store's own order: the accepted terms never go down.
  let staleAccepted = 0;
  let highest: string | undefined;
  for (const entry of store) {
    if (highest !== undefined && below(entry.term, highest)) {
      staleAccepted++;
      note(`store accepted term ${entry.term} (worker ${entry.worker}) after term ${highest}`);
    }
    if (highest === undefined || below(highest, entry.term)) highest = entry.term;
  }

  const writes = records.filter(
    (r): r is Extract<LeaderRecord, { kind: 'write' }> => r.kind === 'write',
  );
  const accepted = writes.filter((w) => w.accepted).sort((a, b) => a.start - b.start);
  // By the clock: no accepted write that began after a newer term's first accepted one ended.
  const firstAccepted = new Map<string, number>();
  for (const w of accepted) {
    firstAccepted.set(w.term, Math.min(firstAccepted.get(w.term) ?? Infinity, w.end));
  }
  let staleAcceptedByClock = 0;
  for (const w of accepted) {
    for (const [term, end] of firstAccepted) {
      if (below(w.term, term) && w.start > end) {
        staleAcceptedByClock++;
        note(`write of term ${w.term} (worker ${w.worker}) accepted after term ${term} wrote`);
        break;
      }
    }
  }
  const unrecordedAccepted = Math.max(0, store.length - accepted.length);

  const faultReports = faults.map((fault) => {
    const termAtFault = leaderships.filter((l) => l.start <= fault.at).at(-1)?.term;
    // A new term's first write after the fault, or else (the old leader kept leading) the first
    // write after the fault was lifted.
    const resumed =
      accepted.find(
        (w) => w.start >= fault.at && (termAtFault === undefined || below(termAtFault, w.term)),
      ) ?? accepted.find((w) => w.start >= (fault.endedAt ?? fault.at));
    const next = leaderships.find(
      (l) => l.start > fault.at && (termAtFault === undefined || below(termAtFault, l.term)),
    );
    return {
      kind: fault.kind,
      resumedAfterMs: resumed ? Math.round(resumed.end - fault.at) : null,
      newLeaderAfterMs: next ? Math.round(next.start - fault.at) : null,
    };
  });

  return {
    leaderships: leaderships.length,
    terms: leaderships.map((l) => l.term),
    duplicateTerms,
    termRegressions,
    observedOverlaps,
    maxOverlapMs: Math.round(maxOverlapMs),
    acceptedWrites: store.length,
    fencedWrites: writes.filter((w) => !w.accepted && !w.failed).length,
    staleWritesTried: writes.filter((w) => w.stale).length,
    staleAccepted,
    staleAcceptedByClock,
    unrecordedAccepted,
    faults: faultReports,
    examples,
  };
}
