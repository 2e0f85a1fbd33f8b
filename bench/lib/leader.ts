/**
 * Scenario 6 of `npm run bench`: leader hand-over time. Candidate processes
 * (bench/lib/leader-worker.ts) campaign for one election with a 2 s lease; the time from the
 * leader's `resign()` call, or from its SIGKILL, to the next candidate's `elected` event, on the
 * system's monotonic clock (comparable between processes). Resign hands over through the release
 * (no lease to wait for); a SIGKILLed leader is replaced when its lease runs out, so that figure
 * is bounded by the lease (between expire − renewEvery and expire after the kill).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Summary, summarize } from './stats.js';

const WORKER = fileURLToPath(new URL('./leader-worker.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const EXPIRE = 2_000;
const clock = (): number => Number(process.hrtime.bigint()) / 1e6;

export interface LeaderResult {
  readonly backend: 'redis' | 'etcd';
  readonly expire: number;
  readonly resign: Summary;
  readonly kill: Summary;
}

interface Candidate {
  readonly child: ChildProcess;
  readonly messages: { type: string; at: number }[];
}

function candidate(backend: string, connection: string, name: string): Candidate {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', WORKER, backend, connection, name, String(EXPIRE)],
    { cwd: ROOT, env: process.env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] },
  );
  const messages: { type: string; at: number }[] = [];
  child.on('message', (m: { type: string; at: number }) => messages.push(m));
  return { child, messages };
}

async function waitFor<T>(find: () => T | undefined, what: string): Promise<T> {
  const deadline = clock() + 60_000;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (clock() > deadline) throw new Error(`leader bench: no ${what} within 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The candidate elected after `after`, and when. */
const electedAfter = (candidates: Candidate[], after: number) =>
  waitFor(() => {
    for (const c of candidates) {
      const m = c.messages.find((each) => each.type === 'elected' && each.at > after);
      if (m) return { candidate: c, at: m.at };
    }
    return undefined;
  }, 'election');

export async function leaderHandover(
  urls: { redis: string; etcd: string },
  rounds: { resign: number; kill: number },
  log: (line: string) => void,
): Promise<LeaderResult[]> {
  const results: LeaderResult[] = [];
  for (const backend of ['redis', 'etcd'] as const) {
    const name = `bench-leader-${backend}-${process.pid}-${Date.now().toString(36)}`;
    const connection = urls[backend];
    const candidates = [0, 1].map(() => candidate(backend, connection, name));
    try {
      await waitFor(
        () =>
          candidates.every((c) => c.messages.some((m) => m.type === 'ready')) ? true : undefined,
        'ready',
      );
      let leader = await electedAfter(candidates, 0);
      const resign: number[] = [];
      for (let i = 0; i < rounds.resign; i++) {
        await new Promise((resolve) => setTimeout(resolve, 200)); // the other is in line
        const before = clock();
        leader.candidate.child.send({ type: 'resign' });
        const resignedAt = await waitFor(
          () => leader.candidate.messages.find((m) => m.type === 'resigned' && m.at > before)?.at,
          'resignation',
        );
        const next = await electedAfter(candidates, before);
        resign.push(next.at - resignedAt);
        leader = next;
      }
      const kill: number[] = [];
      for (let i = 0; i < rounds.kill; i++) {
        await new Promise((resolve) => setTimeout(resolve, 300));
        const killedAt = clock();
        leader.candidate.child.kill('SIGKILL');
        const next = await electedAfter(candidates, killedAt);
        kill.push(next.at - killedAt);
        // A fresh candidate replaces the dead one.
        const index = candidates.indexOf(leader.candidate);
        candidates[index] = candidate(backend, connection, name);
        await waitFor(
          () => (candidates[index]?.messages.some((m) => m.type === 'ready') ? true : undefined),
          'ready',
        );
        leader = next;
      }
      const result = { backend, expire: EXPIRE, resign: summarize(resign), kill: summarize(kill) };
      log(
        `leader ${backend}: resign p50 ${result.resign.p50.toFixed(1)} ms, kill p50 ${result.kill.p50.toFixed(0)} ms`,
      );
      results.push(result);
    } finally {
      for (const c of candidates) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    }
  }
  return results;
}
