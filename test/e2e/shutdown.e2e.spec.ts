/**
 * No open handles after shutdown: a child process boots the sample app on a real backend, uses
 * its locks, calls `app.close()` and must then exit by itself (it never calls process.exit()),
 * which it can only do if SherlockModule closed the client it created and left no timer running.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type CompiledSample, compileSample, ROOT } from './support/compile-sample.js';
import { BACKENDS, backendEnv, uniqueNamespace } from './support/sample-app.js';

/** How long the child may take, once the app is closed, to exit by itself. */
const EXIT_WITHIN_MS = 10_000;
/** How long the whole child may take (boot, requests, one cron tick, close, exit). */
const CHILD_LIMIT_MS = 30_000;

interface ChildReport {
  ok: boolean;
  statuses: number[];
  cleanupRuns: number;
  closedAt: number;
}

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  exitedAt: number;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

function runChild(script: string, env: Record<string, string>): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    let timedOut = false;
    // The child's pid only: it started nothing of its own that could outlive it.
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, CHILD_LIMIT_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, exitedAt: Date.now(), timedOut, stdout, stderr });
    });
  });
}

function report(result: ChildResult): ChildReport | undefined {
  const line = result.stdout.split('\n').find((text) => text.startsWith('{'));
  return line ? (JSON.parse(line) as ChildReport) : undefined;
}

describe('the sample app shuts down without open handles', () => {
  let compiled: CompiledSample;

  beforeAll(async () => {
    compiled = await compileSample();
  });

  afterAll(() => {
    compiled?.remove();
  });

  it.each(BACKENDS)(
    'on the %s backend: exits by itself after app.close()',
    async (backend) => {
      const result = await runChild(compiled.file('test/e2e/fixtures/shutdown-child.ts'), {
        ...backendEnv(backend),
        SHERLOCK_NAMESPACE: uniqueNamespace(`e2e-exit-${backend}`),
        CLEANUP_CRON: '* * * * * *',
      });
      const details = `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
      expect(
        result.timedOut,
        `the child did not exit within ${CHILD_LIMIT_MS} ms\n${details}`,
      ).toBe(false);
      const closed = report(result);
      expect(closed, `the child printed no report\n${details}`).toBeDefined();
      expect(closed).toMatchObject({ ok: true, statuses: [201, 201, 201] });
      expect(closed?.cleanupRuns).toBeGreaterThanOrEqual(1);
      expect({ code: result.code, signal: result.signal }, details).toEqual({
        code: 0,
        signal: null,
      });
      expect(result.exitedAt - (closed?.closedAt ?? 0)).toBeLessThan(EXIT_WITHIN_MS);
    },
    CHILD_LIMIT_MS + 10_000,
  );
});
