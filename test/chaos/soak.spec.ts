/**
 * The soak (CHAOS_SCALE=soak only; skipped otherwise, so never part of `npm test`): on each
 * backend that locks across processes, 4 worker processes take one lock until at least 10,000
 * sections have ended, while the holder is SIGKILLed again and again: a few dozen times per run
 * (spread evenly over the sections, so every backend gets as many whatever its speed), the
 * harness waits for the next grant, SIGKILLs the worker that got it and starts a fresh worker in
 * its place, so 4 keep running.
 *
 * A killed holder's lock frees only at its expiry (short here: 2 s), so: no overlap (a section
 * cut by a kill counts as held until its process was seen dead), fencing tokens strictly
 * increasing across every kill (Redlock issues none), and a counter between the sections that
 * wrote it and that plus the cut sections (a killed holder may have written before dying).
 *
 * CHAOS_SOAK_SECTIONS (default 10,000) and CHAOS_SOAK_KILLS (default 30) change the size, e.g.
 * `CHAOS_SCALE=soak CHAOS_SOAK_SECTIONS=400 CHAOS_SOAK_KILLS=8 npx vitest run test/chaos/soak.spec.ts`.
 */
import { setTimeout as sleep } from 'node:timers/promises';

import { describe, expect, it } from 'vitest';

import {
  etcdHostsValue,
  memcachedServers,
  postgresUrl,
  redisUrl,
  redlockUrls,
  zookeeperServers,
} from '../support/env.js';
import { runChaos, SOAK } from './harness.js';
import type { ChaosBackend } from './worker.js';

function count(name: string, fallback: number): number {
  const text = process.env[name]?.trim();
  if (!text) return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`${name}=${text}: expected a whole number above 0`);
  }
  return value;
}

const SECTIONS = SOAK ? count('CHAOS_SOAK_SECTIONS', 10_000) : 10_000;
const KILLS = SOAK ? count('CHAOS_SOAK_KILLS', 30) : 30;
const EXPIRE = 2_000;
/**
 * The workers' deadline: a generous allowance per section (etcd, the slowest, takes ~25 ms per
 * section with 4 workers on this 2-core VM) and per kill (the dead holder's expiry, a
 * replacement's start), so a run that stalls fails on its section count instead of hanging.
 */
const BUDGET_MS = 60_000 + SECTIONS * 75 + KILLS * 6_000;

const address: Record<ChaosBackend, () => string> = {
  redis: redisUrl,
  etcd: etcdHostsValue,
  memcached: memcachedServers,
  redlock: () => redlockUrls().join(','),
  postgres: postgresUrl,
  zookeeper: zookeeperServers,
};

interface Kill {
  readonly worker: number;
  readonly token: string | undefined;
  /** ms from the grant to the SIGKILL, and from the SIGKILL to the exit seen. */
  readonly afterGrantMs: number;
  readonly deadAfterMs: number;
  /** When the victim was granted the lock (its section's start). */
  readonly grantedAt: number;
  /** ms from the victim's grant to the next grant (undefined: none before the end). */
  readonly freedAfterMs: number | undefined;
  /** Sections ended when it was killed. */
  readonly atSection: number;
}

describe.runIf(SOAK)(
  `soak: 4 processes on one lock, ${SECTIONS} sections, the holder SIGKILLed ${KILLS} times and replaced`,
  { timeout: BUDGET_MS + 60_000 },
  () => {
    it.for(['redis', 'etcd', 'memcached', 'redlock'] as const)(
      '%s: no overlap, tokens strictly increasing across the kills, counter within bounds',
      async (backend) => {
        const kills: Kill[] = [];
        const startedAt = performance.now();
        const { report, counter, records } = await runChaos({
          scenario: `soak-${backend}`,
          backend,
          address: address[backend](),
          workers: 4,
          sections: SECTIONS,
          totalSections: SECTIONS,
          durationMs: BUDGET_MS,
          expire: EXPIRE,
          holdMs: 5,
          workMs: 5,
          during: async (run) => {
            let finished = false;
            void run.finished.then(() => (finished = true));
            for (let k = 1; k <= KILLS && !finished; k++) {
              // Kill number k once k / (KILLS + 1) of the sections have ended.
              const due = Math.round((k * SECTIONS) / (KILLS + 1));
              while (!finished && run.sectionsDone() < due) {
                await Promise.race([run.finished, sleep(20)]);
              }
              if (finished) break;
              const holder = await Promise.race([
                run.nextAcquired(),
                run.finished.then(() => undefined),
              ]);
              if (!holder) break;
              // The grant after the victim's: the lock freed (its expiry, if it died holding).
              const next = Promise.race([run.nextAcquired(), run.finished.then(() => undefined)]);
              const atSection = run.sectionsDone();
              const killed = await run.killAndReplace(holder.worker);
              if (!killed) continue;
              const freed = await next;
              kills.push({
                worker: holder.worker,
                token: holder.token,
                grantedAt: holder.at,
                afterGrantMs: round(killed.killedAt - holder.at),
                deadAfterMs: round(killed.diedAt - killed.killedAt),
                freedAfterMs: freed ? round(freed.at - holder.at) : undefined,
                atSection,
              });
            }
            const freedAfter = kills.flatMap((k) => k.freedAfterMs ?? []);
            Object.assign(run.facts, {
              expire: EXPIRE,
              kills: kills.length,
              killedAfterGrantMaxMs: Math.max(0, ...kills.map((k) => k.afterGrantMs)),
              freedAfterMinMs: Math.min(...freedAfter),
              freedAfterMaxMs: Math.max(...freedAfter),
              killList: kills,
            });
          },
        });
        const seconds = (performance.now() - startedAt) / 1_000;
        console.log(
          `soak ${backend}: ${report.sections} sections (+${report.cutSections} cut by ${kills.length} kills), ` +
            `${report.overlaps} overlaps, ${report.tokenRegressions} token regressions, ` +
            `counter ${counter} (lost updates ${report.lostUpdates}), ${report.signalledLosses} signalled losses, ` +
            `${report.timeouts} timeouts, ${report.backendErrors} backend errors, wait max ${report.waitMaxMs.toFixed(0)} ms, ` +
            `${seconds.toFixed(1)} s (${(report.sections / seconds).toFixed(0)} sections/s)`,
        );
        expect(report.examples).toEqual([]);
        expect(report.overlaps).toBe(0);
        expect(report.tokenRegressions).toBe(0);
        expect(report.lostUpdates, 'counter between the sections that wrote and + cut').toBe(0);
        expect(report.sections).toBeGreaterThanOrEqual(SECTIONS);
        expect(kills.length, 'holders SIGKILLed').toBeGreaterThan(0);
        expect(report.cutSections, 'sections cut by a kill').toBeGreaterThan(0);
        expect(report.cutSections).toBeLessThanOrEqual(kills.length);
        // A victim killed inside its section (no section record): its lock was granted again
        // only at its expiry, not when its process died (memcached's whole-second clock may
        // free it up to 1 s early, as the library's minimumLifetime assumes).
        const finished = new Set(
          records.flatMap((r) => (r.kind === 'section' ? [`${r.worker}:${r.start}`] : [])),
        );
        const diedHolding = kills.filter((k) => !finished.has(`${k.worker}:${k.grantedAt}`));
        expect(diedHolding.length).toBeLessThanOrEqual(report.cutSections);
        const earliest = backend === 'memcached' ? EXPIRE - 1_000 : EXPIRE - 100;
        for (const kill of diedHolding) {
          expect(kill.freedAfterMs, `worker ${kill.worker}'s lock freed`).toBeGreaterThan(earliest);
        }
      },
    );
  },
);

const round = (ms: number): number => Math.round(ms * 10) / 10;
