/**
 * Leader election under the chaos faults, over separate candidate processes
 * (test/chaos/leader-worker.ts): each campaigns for one election and, while it leads, writes to a
 * fenced store (a Redis no fault touches; writes carrying a term below the last accepted one are
 * refused). `checkLeaders` (test/chaos/leader-checker.ts) checks the history: distinct terms,
 * strictly increasing in time order, no stale term's write accepted after a newer term's, and
 * leadership resuming after each fault. Faults: the leader SIGKILLed (and replaced), the server
 * SIGKILLed and restarted, the leader frozen (SIGSTOP) past its lease, the network between the
 * leader and the server cut. On Redis and Etcd (Memory is one process: nothing to fault).
 *
 * About 90 s in all: `npm run test:slow` (not in `npm test`).
 * Reports go to `.tmp/chaos/leader-*.json` (RELIABILITY.md quotes them); with
 * CHAOS_LEADER_DUMP=1 the whole history too (`.tmp/leader-*-records.json`).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';

import { crossProcessNow } from '../fixtures/counter-workload.js';
import { etcdHostsValue, redisUrl } from '../support/env.js';
import { type ServerHandle, startEtcd, startRedis } from '../support/servers.js';
import {
  checkLeaders,
  type LeaderFault,
  type LeaderReport,
  type StoreEntry,
} from './leader-checker.js';
import { bundleChaosScript } from './harness.js';
import type { LeaderRecord, LeaderWorkerSettings } from './leader-worker.js';
import { TcpProxy } from './proxy.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BACKENDS = ['redis', 'etcd'] as const;
type Backend = (typeof BACKENDS)[number];

/** The leader's lease in every scenario (it renews every third of it). */
const EXPIRE = 2_000;

interface Candidate {
  readonly id: number;
  readonly slot: number;
  readonly child: ChildProcess;
  readonly recordFile: string;
  readonly ready: Promise<void>;
  readonly exited: Promise<number>;
}

interface Elected {
  readonly worker: number;
  readonly slot: number;
  readonly term: string;
  readonly at: number;
}

interface LeaderRun {
  readonly candidates: readonly Candidate[];
  /** The current candidate of each slot. */
  readonly slots: readonly Candidate[];
  /** Resolves with the next election of any candidate. */
  nextElected(): Promise<Elected>;
  /** The latest election so far. */
  lastElected(): Elected | undefined;
  /** SIGKILLs a candidate and starts a fresh one in its slot; resolves when it is ready. */
  killAndReplace(id: number): Promise<void>;
  fault(kind: string, at: number, endedAt?: number): void;
  readonly facts: Record<string, unknown>;
}

interface RunOptions {
  readonly scenario: string;
  readonly backend: Backend;
  readonly address: string;
  /** The election address of the candidate in `slot` (default `address`). */
  readonly addressFor?: (slot: number) => string;
  readonly candidates: number;
  readonly durationMs: number;
  readonly operationTimeout?: number;
  readonly during: (run: LeaderRun) => Promise<void>;
}

interface RunResult {
  readonly report: LeaderReport;
  readonly records: readonly LeaderRecord[];
  readonly facts: Record<string, unknown>;
}

const store = new Redis(redisUrl(), { maxRetriesPerRequest: 1 });
afterAll(() => store.disconnect());

async function runLeaders(options: RunOptions): Promise<RunResult> {
  const script = await bundleChaosScript('leader-worker');
  const began = performance.now();
  const dir = mkdtempSync(join(tmpdir(), `chaos-${options.scenario}-`));
  const unique = `${options.scenario}-${process.pid}-${Date.now().toString(36)}`;
  const termKey = `chaos-leader:${unique}:term`;
  const logKey = `chaos-leader:${unique}:log`;
  const until = Date.now() + options.durationMs;
  const candidates: Candidate[] = [];
  const slots: Candidate[] = [];
  const deaths = new Map<number, number>();
  const faults: LeaderFault[] = [];
  const facts: Record<string, unknown> = {};
  const listeners: ((elected: Elected) => void)[] = [];
  let last: Elected | undefined;

  const spawn = (slot: number): Candidate => {
    const id = candidates.length;
    const settings: LeaderWorkerSettings = {
      id,
      backend: options.backend,
      address: options.addressFor?.(slot) ?? options.address,
      storeUrl: redisUrl(),
      termKey,
      logKey,
      election: `chaos-${unique}`,
      expire: EXPIRE,
      operationTimeout: options.operationTimeout ?? 1_000,
      writeEvery: 50,
      staleWrite: true,
      until,
      recordFile: join(dir, `candidate-${id}.jsonl`),
    };
    writeFileSync(settings.recordFile, '');
    const child = fork(script, [], {
      env: { ...process.env, CHAOS_LEADER: JSON.stringify(settings) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const exited = new Promise<number>((resolve) =>
      child.once('exit', () => {
        const at = crossProcessNow();
        deaths.set(id, at);
        resolve(at);
      }),
    );
    const ready = new Promise<void>((resolve) => {
      void exited.then(() => resolve());
      child.on('message', (message: { type?: string; term?: string; at?: number }) => {
        if (message.type === 'ready') resolve();
        if (message.type === 'elected') {
          last = { worker: id, slot, term: message.term ?? '', at: message.at ?? 0 };
          for (const listener of listeners.splice(0)) listener(last);
        }
      });
    });
    const candidate = { id, slot, child, recordFile: settings.recordFile, ready, exited };
    candidates.push(candidate);
    slots[slot] = candidate;
    return candidate;
  };

  try {
    for (let slot = 0; slot < options.candidates; slot++) spawn(slot);
    await Promise.all(candidates.map((c) => c.ready));
    await options.during({
      candidates,
      slots,
      facts,
      nextElected: () => new Promise((resolve) => listeners.push(resolve)),
      lastElected: () => last,
      killAndReplace: async (id) => {
        const victim = candidates[id];
        if (!victim || victim.child.exitCode !== null || victim.child.signalCode !== null) return;
        victim.child.kill('SIGKILL');
        faults.push({ kind: 'leader SIGKILL', at: crossProcessNow() });
        await victim.exited;
        await spawn(victim.slot).ready;
      },
      fault: (kind, at, endedAt) =>
        faults.push({ kind, at, ...(endedAt === undefined ? {} : { endedAt }) }),
    });
    for (const { child } of candidates) {
      if (child.connected) child.send({ type: 'stop' }, () => undefined);
    }
    const stopped = await Promise.race([
      Promise.all(candidates.map((c) => c.exited)).then(() => true),
      sleep(options.durationMs + 20_000).then(() => false),
    ]);
    if (!stopped) facts['candidatesKilledAtEnd'] = true;
    for (const { child } of candidates) if (child.exitCode === null) child.kill('SIGKILL');
    await Promise.all(candidates.map((c) => c.exited));
    const runEnd = crossProcessNow();
    let torn = 0;
    const records = candidates.flatMap((c) => {
      const lines = readFileSync(c.recordFile, 'utf8').split('\n').filter(Boolean);
      return lines.flatMap((line, index) => {
        try {
          return [JSON.parse(line) as LeaderRecord];
        } catch (error) {
          // A SIGKILL can land in the middle of an append: only a killed candidate's last line.
          if (index !== lines.length - 1) throw error;
          torn++;
          return [];
        }
      });
    });
    if (torn > 0) facts['tornRecords'] = torn;
    const log = (await store.lrange(logKey, 0, -1)).map((line) => JSON.parse(line) as StoreEntry);
    await store.del(termKey, logKey);
    const report = checkLeaders(records, log, faults, deaths, runEnd);
    if (process.env['CHAOS_LEADER_DUMP'] === '1') {
      writeFileSync(
        join(root, '.tmp', `${options.scenario}-records.json`),
        JSON.stringify({ records, faults, log }),
      );
    }
    writeReport(options, report, facts, performance.now() - began);
    return { report, records, facts };
  } finally {
    for (const { child } of candidates) if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

function writeReport(
  options: RunOptions,
  report: LeaderReport,
  facts: Record<string, unknown>,
  durationMs: number,
): void {
  const out = join(root, '.tmp', 'chaos');
  mkdirSync(out, { recursive: true });
  const summary = {
    scenario: options.scenario,
    backend: options.backend,
    candidates: options.candidates,
    expire: EXPIRE,
    at: new Date().toISOString(),
    durationMs: Math.round(durationMs),
    ...report,
    terms: report.terms.length,
    facts,
  };
  writeFileSync(join(out, `${options.scenario}.json`), `${JSON.stringify(summary, null, 2)}\n`);
  const faults = report.faults
    .map(
      (f) =>
        `${f.kind}: writes again +${f.resumedAfterMs ?? '-'} ms, new leader +${f.newLeaderAfterMs ?? '-'} ms`,
    )
    .join('; ');
  console.log(
    `chaos ${options.scenario}: ${report.leaderships} leaderships, ${report.acceptedWrites} accepted writes, ` +
      `${report.fencedWrites} fenced (${report.staleWritesTried} stale tries), ${report.observedOverlaps} overlaps ` +
      `on the clock (max ${report.maxOverlapMs} ms), ${report.duplicateTerms} duplicate terms, ` +
      `${report.termRegressions} term regressions, ${report.staleAccepted + report.staleAcceptedByClock} stale accepted; ${faults}` +
      (Object.keys(facts).length > 0 ? `; ${JSON.stringify(facts)}` : ''),
  );
}

/** The invariant, and leadership resumed after every fault. */
function expectSafe(report: LeaderReport, faults: number): void {
  expect(report.examples, 'first violations').toEqual([]);
  expect(report.duplicateTerms).toBe(0);
  expect(report.termRegressions).toBe(0);
  expect(report.staleAccepted).toBe(0);
  expect(report.staleAcceptedByClock).toBe(0);
  expect(report.faults).toHaveLength(faults);
  for (const fault of report.faults) {
    expect(fault.resumedAfterMs, `${fault.kind}: a leader wrote again`).not.toBeNull();
  }
  expect(report.leaderships).toBeGreaterThan(faults);
  expect(report.acceptedWrites).toBeGreaterThan(10);
}

const address = { redis: redisUrl, etcd: etcdHostsValue };

describe('leader election under faults', { timeout: 120_000 }, () => {
  it.for(BACKENDS)(
    '%s: the leader SIGKILLed three times (replaced): a new leader after its lease, terms grow, fencing holds',
    async (backend) => {
      const { report } = await runLeaders({
        scenario: `leader-sigkill-${backend}`,
        backend,
        address: address[backend](),
        candidates: 3,
        durationMs: 14_000,
        during: async (run) => {
          for (let i = 0; i < 3; i++) {
            const leader = run.lastElected() ?? (await run.nextElected());
            await sleep(500);
            await run.killAndReplace(leader.worker);
            // The next leader comes once the dead one's lease has run out.
            await run.nextElected();
            await sleep(500);
          }
        },
      });
      expectSafe(report, 3);
      for (const fault of report.faults) {
        expect(fault.newLeaderAfterMs, 'a new leader after the kill').not.toBeNull();
      }
    },
  );

  it.for(BACKENDS)(
    '%s: the server SIGKILLed and restarted: no leader elected while it is down, a leader writes again after',
    async (backend) => {
      const server: ServerHandle & { url: string } =
        backend === 'redis'
          ? await startRedis({ appendonly: true, args: ['--appendfsync', 'always'] })
          : await startEtcd();
      try {
        const { report, records, facts } = await runLeaders({
          scenario: `leader-restart-${backend}`,
          backend,
          address: server.url,
          candidates: 3,
          durationMs: 16_000,
          during: async (run) => {
            if (!run.lastElected()) await run.nextElected();
            await sleep(1_500);
            await server.kill('SIGKILL');
            const killedAt = crossProcessNow();
            run.facts['killedAt'] = killedAt;
            await sleep(EXPIRE + 1_000);
            run.facts['restartingAt'] = crossProcessNow();
            await server.start();
            const restartedAt = crossProcessNow();
            run.fault('server restart', killedAt, restartedAt);
            run.facts['downMs'] = Math.round(restartedAt - killedAt);
            await sleep(4_000);
          },
        });
        expectSafe(report, 1);
        // No leadership begins while the server is down (a grant needs the server).
        const [from, to] = [Number(facts['killedAt']) + 100, Number(facts['restartingAt'])];
        const during = records.filter((r) => r.kind === 'elected' && r.at > from && r.at < to);
        expect(during).toEqual([]);
      } finally {
        await server.stop();
      }
    },
  );

  it.for(BACKENDS)(
    '%s: the leader frozen (SIGSTOP) past its lease: another leads, the frozen one is fenced or steps down',
    async (backend) => {
      const { report, records } = await runLeaders({
        scenario: `leader-sigstop-${backend}`,
        backend,
        address: address[backend](),
        candidates: 3,
        durationMs: 10_000,
        during: async (run) => {
          const leader = run.lastElected() ?? (await run.nextElected());
          await sleep(500);
          const child = run.slots[leader.slot]!.child;
          child.kill('SIGSTOP');
          const stoppedAt = crossProcessNow();
          run.facts['frozen'] = leader.worker;
          await sleep(EXPIRE + 2_500);
          child.kill('SIGCONT');
          run.fault('leader SIGSTOP', stoppedAt, crossProcessNow());
          await sleep(2_500);
        },
      });
      expectSafe(report, 1);
      expect(report.faults[0]?.newLeaderAfterMs, 'another leads while it is frozen').not.toBeNull();
      // The frozen leader ended its leadership after it resumed (it knows it lost).
      const frozen = records.filter((r) => r.kind === 'ended' && r.reason === 'lost');
      expect(frozen.length).toBeGreaterThan(0);
    },
  );

  it.for(BACKENDS)(
    '%s: the network between the leader and the server cut past its lease: another leads, the cut one steps down and is fenced',
    async (backend) => {
      const target = new URL(
        backend === 'redis' ? redisUrl() : (etcdHostsValue().split(',')[0] ?? ''),
      );
      const proxies = await Promise.all([0, 1, 2].map(() => TcpProxy.start(Number(target.port))));
      try {
        const { report } = await runLeaders({
          scenario: `leader-cut-${backend}`,
          backend,
          address: address[backend](),
          addressFor: (slot) =>
            backend === 'redis'
              ? `redis://${proxies[slot]!.address}`
              : `http://${proxies[slot]!.address}`,
          candidates: 3,
          durationMs: 11_000,
          during: async (run) => {
            const leader = run.lastElected() ?? (await run.nextElected());
            await sleep(500);
            const proxy = proxies[leader.slot]!;
            proxy.cut();
            const cutAt = crossProcessNow();
            await sleep(EXPIRE + 2_500);
            proxy.heal();
            run.fault('network cut', cutAt, crossProcessNow());
            await sleep(3_000);
          },
        });
        expectSafe(report, 1);
        expect(report.faults[0]?.newLeaderAfterMs, 'another leads across the cut').not.toBeNull();
      } finally {
        await Promise.all(proxies.map((p) => p.close()));
      }
    },
  );
});
