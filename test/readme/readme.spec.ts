/**
 * The README's examples of the core API run as written: every ```ts block that imports from
 * 'nestjs-sherlock/core' is saved to a file and run in a child process (with tsx, the package
 * resolved by its own name, as a user's code would), against the test servers.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);

const blocks = [...readFileSync(join(root, 'README.md'), 'utf8').matchAll(/```ts\n([\s\S]*?)```/g)]
  .map((match) => match[1] ?? '')
  .filter((code) => code.includes("from 'nestjs-sherlock/core'"));

describe('README core examples', () => {
  it('has the examples this test expects', () => {
    expect(blocks.length).toBe(5);
  });

  it.each(blocks.map((code, index) => ({ index, code, first: code.split('\n')[0] })))(
    'block $index runs ($first)',
    async ({ index, code }) => {
      // Inside the repo, so that 'nestjs-sherlock' resolves to this package by self-reference.
      const dir = join(root, '.tmp', 'readme');
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `example-${index}.mts`);
      writeFileSync(file, code);
      const { stdout } = await run(process.execPath, ['--import', 'tsx', file], {
        cwd: root,
        env: process.env,
        timeout: 30_000,
      });
      // Each example prints what it did; check it ran to the end.
      expect(stdout.trim().length).toBeGreaterThan(0);
    },
  );
});
