/**
 * A client the library makes from `connection` settings (redis, redlock) to a server that is down
 * reports that through the lock's typed error, and prints nothing: no "[ioredis] Unhandled error
 * event" on stderr for each reconnect. Run in a child process (the built package, as a user's
 * app) so that its stderr is the library's alone.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

import { getFreePorts } from '../support/servers.js';

const DIST = pathToFileURL(join(import.meta.dirname, '..', '..', 'dist', 'index.js')).href;

/** Takes a lock on each backend against dead ports, lets the clients retry, prints the errors. */
const SCRIPT = `
import { LockManager } from ${JSON.stringify(DIST)};
const ports = process.argv.slice(1).map(Number);
const url = (port) => 'redis://127.0.0.1:' + port;
const out = {};
for (const [backend, connection] of [['redis', url(ports[0])], ['redlock', ports.map(url)]]) {
  const manager = new LockManager({ backend, connection, operationTimeout: 500 });
  const error = await manager.lock('x').acquire(false).then(() => null, (e) => e);
  out[backend] = error?.constructor.name ?? 'granted';
  await new Promise((resolve) => setTimeout(resolve, 1500)); // reconnect attempts fail meanwhile
  await manager.close().catch(() => undefined);
}
console.log(JSON.stringify(out));
`;

function run(ports: number[]): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--input-type=module', '-e', SCRIPT, ...ports.map(String)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ stdout, stderr, code }));
  });
}

describe('clients made from connection settings, server down', () => {
  it('redis and redlock: the acquire rejects with a typed error, and nothing is printed', async () => {
    const ports = await getFreePorts(3);
    const { stdout, stderr, code } = await run(ports);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const errors = JSON.parse(stdout) as Record<string, string>;
    expect(Object.keys(errors)).toEqual(['redis', 'redlock']);
    for (const name of Object.values(errors)) expect(name).toMatch(/Error$/);
  });
});
