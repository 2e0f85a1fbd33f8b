/**
 * The contract kit is runner-neutral: test/kit/node-test.example.mjs registers it with node:test
 * (`before`/`after`, no Vitest anywhere) for two small custom backends, and `node --test` runs it
 * in a child process. The correct backend passes every test; the one whose release ignores the
 * owner token fails exactly the tests that catch that.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

describe('the contract kit under node:test', () => {
  it('runs a correct backend green and catches a release that ignores the owner', () => {
    const run = spawnSync(
      process.execPath,
      ['--test', '--test-reporter=tap', 'test/kit/node-test.example.mjs'],
      {
        cwd: ROOT,
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    const tap = run.stdout;
    const count = (what: string) => Number(new RegExp(`^# ${what} (\\d+)$`, 'm').exec(tap)?.[1]);
    expect(count('tests'), tap.slice(-2_000)).toBeGreaterThan(60);
    expect(count('fail')).toBe(2);
    expect(run.status).not.toBe(0);

    // The suites, top level: mapstore ok, sloppy not ok.
    expect(tap).toMatch(/^ok \d+ - mapstore backend: contract$/m);
    expect(tap).toMatch(/^not ok \d+ - sloppy backend: contract$/m);
    const failed = [...tap.matchAll(/^\s+not ok \d+ - (.+)$/gm)].map((m) => m[1]);
    expect(failed).toEqual([
      "release() after the lock expired and another object took it is 'not-owned', and the new owner keeps it",
      'every acquire takes a new owner token: after its expired hold, the old holder re-acquires and releases with a fresh one',
      'expiry',
    ]);
  });
});
