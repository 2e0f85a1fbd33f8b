/** Spawns the built CLI (`dist/cli.js`), as `npx nestjs-sherlock` would run it. */
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';

const CLI = resolve(import.meta.dirname, '../../dist/cli.js');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with `args` (and `env` over the process's, without SHERLOCK_*). */
export function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('SHERLOCK_')),
  );
  return new Promise((done) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...base, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}
