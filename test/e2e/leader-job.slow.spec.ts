/**
 * The sample app's leader-only digest job (sample-app/src/digest) on three replicas, each its own
 * process running the compiled app as production does (`node main.js`), sharing Redis or Etcd.
 * The digest runs every second (DIGEST_CRON) with a lease of LEASE_MS. Checked from the
 * replicas' logs (a pipe: written synchronously, so a SIGKILL loses no line already logged):
 *
 * - at each tick, one replica runs the digest (never two runs of one tick), and the runs' terms
 *   never go back in time;
 * - the leader SIGTERMed (a rolling deploy: it resigns at shutdown) is replaced well within the
 *   lease;
 * - the next leader SIGKILLed (nothing resigns) is replaced only once its lease has run out.
 *
 * About 25 s per backend: a `.slow.spec.ts` (`npm run test:slow`).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { getFreePort } from '../support/servers.js';
import { type CompiledSample, compileSample, ROOT } from './support/compile-sample.js';
import { backendEnv, uniqueNamespace } from './support/sample-app.js';

/** The leader's lease; it renews every third of it (the library's default). */
const LEASE_MS = 6_000;
const RENEW_MS = LEASE_MS / 3;

interface Run {
  readonly replica: number;
  readonly term: bigint;
  /** performance.now() of the parent when the line arrived. */
  readonly at: number;
}

interface Replica {
  readonly index: number;
  readonly child: ChildProcess;
  readonly listening: Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output: string;
}

class Fleet {
  readonly replicas: Replica[] = [];
  readonly runs: Run[] = [];
  readonly elected: Run[] = [];
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly main: string,
    private readonly env: Record<string, string>,
  ) {}

  async start(count: number): Promise<void> {
    const ports = await Promise.all(Array.from({ length: count }, () => getFreePort()));
    for (const port of ports) this.replicas.push(this.spawn(this.replicas.length, port));
    await Promise.all(this.replicas.map((r) => r.listening));
  }

  private spawn(index: number, port: number): Replica {
    const child = spawn(process.execPath, [this.main], {
      cwd: ROOT,
      env: { ...process.env, ...this.env, PORT: String(port), NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let listen = (): void => undefined;
    const listening = new Promise<void>((resolve) => (listen = resolve));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const replica: Replica = { index, child, listening, exited, output: '' };
    let pending = '';
    const onData = (chunk: string) => {
      replica.output += chunk;
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      const at = performance.now();
      for (const line of lines) {
        if (line.includes('Listening on')) listen();
        const run = /Digest run #\d+ on this replica \(term (\d+)\)/.exec(line);
        if (run) this.runs.push({ replica: index, term: BigInt(run[1] ?? -1), at });
        const lead = /Leading the digest election \(term (\d+)\)/.exec(line);
        if (lead) this.elected.push({ replica: index, term: BigInt(lead[1] ?? -1), at });
      }
      for (const wake of this.waiters) wake();
    };
    child.stdout?.setEncoding('utf8').on('data', onData);
    child.stderr?.setEncoding('utf8').on('data', onData);
    void exited.then(() => listen());
    return replica;
  }

  /** Resolves once `test()` holds, re-checked at each line of output; rejects after `ms`. */
  async until<T>(what: string, test: () => T | undefined, ms = 60_000): Promise<T> {
    const deadline = performance.now() + ms;
    for (;;) {
      const value = test();
      if (value !== undefined) return value;
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}\n${this.logs()}`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, Math.min(left, 500));
        this.waiters.add(wake);
      });
    }
  }

  logs(): string {
    return this.replicas.map((r) => `--- replica ${r.index}\n${r.output}`).join('\n');
  }

  async stopAll(): Promise<void> {
    for (const { child } of this.replicas) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    }
    await Promise.race([Promise.all(this.replicas.map((r) => r.exited)), sleep(15_000)]);
    for (const { child } of this.replicas) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }
}

describe.each(['redis', 'etcd'] as const)(
  'leader-only digest on the %s backend, three replica processes',
  (backend) => {
    let compiled: CompiledSample;
    let fleet: Fleet;

    beforeAll(async () => {
      compiled = await compileSample();
      fleet = new Fleet(compiled.file('sample-app/src/main.ts'), {
        ...backendEnv(backend),
        SHERLOCK_NAMESPACE: uniqueNamespace(`e2e-digest-${backend}`),
        DIGEST_CRON: '* * * * * *',
        DIGEST_LEASE_MS: String(LEASE_MS),
        CLEANUP_CRON: '0 0 0 1 1 *',
      });
      await fleet.start(3);
    });

    afterAll(async () => {
      await fleet?.stopAll();
      compiled?.remove();
    });

    it(
      'one run per tick; SIGTERM hands over at once, SIGKILL after the lease',
      { timeout: 120_000 },
      async () => {
        // Phase 1: a leader runs the digest tick after tick.
        const first = await fleet.until('a first leader', () => fleet.elected[0]);
        await fleet.until('three runs of the first leader', () =>
          fleet.runs.filter((r) => r.term === first.term).length >= 3 ? true : undefined,
        );

        // Phase 2: SIGTERM the leader: it resigns at shutdown and another leads at once.
        const terminated = fleet.replicas[first.replica]!;
        const termAt = performance.now();
        terminated.child.kill('SIGTERM');
        const second = await fleet.until('a leader after the SIGTERM', () =>
          fleet.elected.find((e) => e.at > termAt && e.replica !== first.replica),
        );
        // Nest closes the app, then raises the signal again to end the process.
        const exit = await terminated.exited;
        expect([0, 'SIGTERM']).toContain(exit.code ?? exit.signal);
        expect(terminated.output).toMatch(/election 'digest': resigned at shutdown/);
        await fleet.until('two runs of the second leader', () =>
          fleet.runs.filter((r) => r.term === second.term).length >= 2 ? true : undefined,
        );

        // Phase 3: SIGKILL the new leader: the last replica leads once its lease runs out.
        const killed = fleet.replicas[second.replica]!;
        const lastRunOfKilled = Math.max(
          ...fleet.runs.filter((r) => r.replica === second.replica).map((r) => r.at),
        );
        const killAt = performance.now();
        killed.child.kill('SIGKILL');
        const third = await fleet.until('a leader after the SIGKILL', () =>
          fleet.elected.find((e) => e.at > killAt),
        );
        await fleet.until('two runs of the third leader', () =>
          fleet.runs.filter((r) => r.term === third.term).length >= 2 ? true : undefined,
        );

        const afterTerm = second.at - termAt;
        const afterKill = third.at - killAt;
        console.log(
          `${backend}: lease ${LEASE_MS} ms; new leader ${afterTerm.toFixed(0)} ms after the leader's SIGTERM, ` +
            `${afterKill.toFixed(0)} ms after the next one's SIGKILL; ${fleet.runs.length} runs, terms ` +
            `${first.term} -> ${second.term} -> ${third.term}`,
        );

        // Terms grow with each new leadership.
        expect(second.term).toBeGreaterThan(first.term);
        expect(third.term).toBeGreaterThan(second.term);
        expect(third.replica).not.toBe(second.replica);
        expect(third.replica).not.toBe(first.replica);
        // SIGTERM: the resignation hands over; nobody waited for the lease.
        expect(afterTerm, 'SIGTERM: a new leader well within the lease').toBeLessThan(LEASE_MS);
        // SIGKILL: the dead leader's lease, renewed at most RENEW_MS before the kill, had to run
        // out first (a lower bound: no load can make it shorter); and it did not take forever.
        expect(afterKill, 'SIGKILL: not before the lease ran out').toBeGreaterThan(
          LEASE_MS - RENEW_MS - 500,
        );
        expect(afterKill).toBeLessThan(LEASE_MS + 30_000);
        expect(third.at - lastRunOfKilled).toBeGreaterThan(0);

        // One replica per tick: the schedulers of one tick fire within milliseconds of each
        // other, so two runs of a tick would be that close; and the runs' terms never go back.
        const runs = [...fleet.runs].sort((a, b) => a.at - b.at);
        expect(runs.length).toBeGreaterThanOrEqual(7);
        for (let i = 1; i < runs.length; i++) {
          const [previous, run] = [runs[i - 1]!, runs[i]!];
          expect(run.at - previous.at, `runs ${i - 1} and ${i}`).toBeGreaterThan(250);
          expect(run.term >= previous.term, `run ${i}'s term`).toBe(true);
        }
        // Each term is one replica's.
        const owner = new Map<bigint, number>();
        for (const { term, replica } of runs) {
          expect(owner.get(term) ?? replica).toBe(replica);
          owner.set(term, replica);
        }
      },
    );
  },
);
