/**
 * A Redis waiter frozen (SIGSTOP: as a long GC pause or a stalled VM) while a release grants it
 * the lock by a message: the message waits in its socket while the grant expires at the server
 * and another client takes the lock. On resume the waiter must not start holding that stale
 * grant (two holders): it reads the server's time of the grant in the message, sees the grant
 * expired, and queues again; it gets the lock after the other holder releases, with a higher
 * fencing token. A real child process (test/fixtures/stale-grant-worker.ts) on the real server.
 */
import { spawn } from 'node:child_process';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { Redis } from 'ioredis';
import { RedisLock } from 'nestjs-sherlock';
import { describe, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { redisUrl } from '../support/env.js';
import { waitFor } from '../support/helpers.js';
import { scope } from '../support/locks.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKER = fileURLToPath(new URL('../fixtures/stale-grant-worker.ts', import.meta.url));

interface Report {
  readonly ready?: boolean;
  readonly acquired?: string;
  readonly aborted?: boolean;
}

describe('redis: a grant that expired while its waiter was frozen', () => {
  it('does not start a holding: the waiter queues again and gets the lock after the new holder', async ({
    expect,
    onTestFinished,
  }) => {
    const { defer } = scope(onTestFinished);
    const url = redisUrl();
    const inspector = new Redis(url);
    defer(() => inspector.disconnect());
    const client = new Redis(url);
    defer(() => client.disconnect());
    const name = uniqueName('stale-grant');
    const first = new RedisLock(name, { client, expire: 30_000 });
    const second = new RedisLock(name, { client, expire: 30_000 });
    expect(await first.acquire(false)).toBe(true);

    const child = spawn(process.execPath, ['--import', 'tsx', WORKER, url, name], {
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
    /** Every "acquired" report, with whether `second` held the lock when it came. */
    const acquired: { token: string; aborted: boolean; whileSecondHeld: boolean }[] = [];
    let secondHolds = false;
    child.on('message', (report: Report) => {
      if (report.acquired !== undefined) {
        acquired.push({
          token: report.acquired,
          aborted: report.aborted === true,
          whileSecondHeld: secondHolds,
        });
      }
    });

    // The child waits in line (its entry is in the queue), then is frozen.
    await waitFor(async () => (await inspector.zcard(first.queueKey)) === 1, {
      what: 'the child queued',
      timeout: 20_000,
    });
    expect(child.kill('SIGSTOP')).toBe(true);
    // The release grants the frozen child the lock by a message (its 1 s expiry starts now).
    await first.release();
    const granted = await inspector.get(first.key);
    expect(granted, 'granted to the frozen child').not.toBeNull();
    // The grant expires at the server; another client takes the lock.
    await waitFor(async () => (await inspector.exists(first.key)) === 0, {
      what: 'the grant expired',
      timeout: 10_000,
    });
    await delay(1_000);
    expect(await second.acquire(false)).toBe(true);
    secondHolds = true;
    // The child resumes and reads the old message while `second` holds.
    expect(child.kill('SIGCONT')).toBe(true);
    await delay(3_000);
    expect(acquired, 'no holding started from the stale grant').toEqual([]);
    expect(await inspector.zcard(first.queueKey), 'the child queued again').toBe(1);

    // `second` releases: the child is granted now, with a higher fencing token.
    secondHolds = false;
    await second.release();
    await waitFor(() => acquired.length > 0, { what: 'the child acquired', timeout: 20_000 });
    expect(await exited, output).toBe(0);
    expect(acquired).toHaveLength(1);
    const [holding] = acquired;
    expect(holding?.whileSecondHeld).toBe(false);
    expect(holding?.aborted).toBe(false);
    expect(BigInt(holding?.token ?? -1)).toBeGreaterThan(BigInt(second.fencingToken ?? -1));
  }, 60_000);
});
