import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Scenario 6 of `npm run bench`: bench/semaphore.ts (this library's semaphore against
 * `redis-semaphore`'s `Semaphore`: uncontended, 16 callers in one process, 8 and 32 processes
 * sharing 4 permits) on the servers bench/run.ts started. Resolves its markdown.
 */
export function semaphoreBench(redisUrl: string, etcdUrl: string): Promise<string> {
  const script = fileURLToPath(new URL('../semaphore.ts', import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      env: { ...process.env, REDIS_URL: redisUrl, ETCD_HOSTS: etcdUrl },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0
        ? resolve(out.trim())
        : reject(new Error(`bench/semaphore.ts exited with ${code}`)),
    );
  });
}
