/**
 * A child process that waits for a lock and reports over IPC (the stale-grant workers in
 * test/fixtures), for the frozen-waiter tests (redis-stale-grant.slow.spec.ts,
 * postgres-stale-grant.spec.ts): the test SIGSTOPs it while it is granted, lets the grant expire,
 * and checks what it reports on SIGCONT. Killed (SIGCONT, SIGKILL) when the test ends.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Report {
  readonly ready?: boolean;
  readonly acquired?: string;
  readonly aborted?: boolean;
}

/** One "acquired" report, with whether another client held the lock when it came. */
export interface ChildHolding {
  readonly token: string;
  readonly aborted: boolean;
  readonly whileSecondHeld: boolean;
}

export interface StaleGrantChild {
  readonly child: ChildProcess;
  /** Every "acquired" report so far. */
  readonly acquired: ChildHolding[];
  /** Whether another client holds the lock from now on (recorded with each report). */
  secondHolds(holds: boolean): void;
  /** Its exit code. */
  readonly exited: Promise<number | null>;
  /** What it printed, for a failure's message. */
  output(): string;
}

/** Starts `worker` (a fixture path relative to test/fixtures) with `args`, from the repo root. */
export function spawnStaleGrantChild(
  worker: string,
  args: readonly string[],
  defer: (cleanup: () => unknown) => void,
): StaleGrantChild {
  const file = fileURLToPath(new URL(`../fixtures/${worker}`, import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
    cwd: ROOT,
    env: process.env,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  defer(() => {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const acquired: ChildHolding[] = [];
  let secondHolds = false;
  child.on('message', (report: Report) => {
    if (report.acquired === undefined) return;
    acquired.push({
      token: report.acquired,
      aborted: report.aborted === true,
      whileSecondHeld: secondHolds,
    });
  });
  return {
    child,
    acquired,
    secondHolds: (holds) => (secondHolds = holds),
    exited,
    output: () => output,
  };
}
