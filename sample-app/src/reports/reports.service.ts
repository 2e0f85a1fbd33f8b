import { Injectable } from '@nestjs/common';
import { LockService, LockTimeoutError } from 'nestjs-sherlock';
import { setTimeout as delay } from 'node:timers/promises';

/** A generated report. */
export interface Report {
  generatedAt: string;
  tookMs: number;
}

/** The lock that makes report generation a one-at-a-time affair across all replicas. */
const REPORT_LOCK = 'reports:monthly';

/** The semaphore that lets at most `EXPORT_LIMIT` exports run at once across all replicas. */
const EXPORT_SEMAPHORE = 'reports:exports';
export const EXPORT_LIMIT = 2;

/** An export, and how many were running (this one included) when it started. */
export interface Export extends Report {
  runningAtStart: number;
}

/**
 * Uses LockService directly, for when a decorator does not fit: here the caller must learn that
 * a report is already being generated, rather than wait for it or get an error.
 */
@Injectable()
export class ReportsService {
  constructor(private readonly locks: LockService) {}

  /**
   * Generates a report, or returns `null` if another request (on any replica) is at it.
   * (To wait for the lock instead, `this.locks.run(REPORT_LOCK, () => build())` acquires, runs
   * and releases in one call.)
   */
  async generate(ms: number): Promise<Report | null> {
    // One attempt, no waiting: the held lock, or null if someone else holds it. The lock expires
    // on its own after 60 s should this process die before releasing it.
    const lock = await this.locks.tryAcquire(REPORT_LOCK, { expire: 60_000 });
    if (!lock) return null;
    try {
      const started = performance.now();
      await delay(ms); // query, aggregate, render, upload...
      return {
        generatedAt: new Date().toISOString(),
        tookMs: Math.round(performance.now() - started),
      };
    } finally {
      await lock.release();
    }
  }

  /**
   * Exports a report, at most `EXPORT_LIMIT` at once over every replica (a semaphore: the
   * database behind it takes only so many), waiting up to `waitMs` for a permit; `null` when
   * none came free in time. The permit expires on its own after 60 s should this process die.
   * On a backend without semaphores (Memcached) this throws an UnsupportedFeatureError.
   */
  async export(ms: number, waitMs: number): Promise<Export | null> {
    const permit = this.locks.semaphore(EXPORT_SEMAPHORE, EXPORT_LIMIT, { expire: 60_000 });
    try {
      return await permit.using(
        async () => {
          const runningAtStart = await permit.count();
          const started = performance.now();
          await delay(ms);
          return {
            generatedAt: new Date().toISOString(),
            tookMs: Math.round(performance.now() - started),
            runningAtStart,
          };
        },
        { timeout: waitMs },
      );
    } catch (err) {
      if (err instanceof LockTimeoutError) return null;
      throw err;
    }
  }

  /** Whether a report is being generated anywhere right now. */
  isGenerating(): Promise<boolean> {
    return this.locks.isLocked(REPORT_LOCK);
  }
}
