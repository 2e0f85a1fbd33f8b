/**
 * Client CPU per uncontended acquire + release cycle, for `node --cpu-prof`: one contender of
 * bench/lib/contenders.ts in a loop against a server this script starts.
 *
 *   node --import tsx bench/cpu-cycle.ts ours-redis 30000
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/cpu-cycle.ts redis-semaphore 30000
 */
import { Redis } from 'ioredis';
import memjs from 'memjs';
import { startMemcached, startRedis } from '../test/support/servers.js';
import { contender } from './lib/contenders.js';
import { rawScripts } from './lib/raw-scripts.js';

const [id = 'ours-redis', count = '30000'] = process.argv.slice(2);
const n = Number(count);
const c = id === rawScripts.id ? rawScripts : contender(id);
const server = c.backend === 'redis' ? await startRedis() : await startMemcached();
const redis = c.backend === 'redis' ? new Redis((server as { url: string }).url) : undefined;
const memcached =
  c.backend === 'memcached'
    ? memjs.Client.create((server as { servers: string }).servers, { retries: 0 })
    : undefined;
const clients = { redis, memcached };
await c.prepare?.(clients);
const handle = c.make(clients, `cpu:${id}`);
for (let i = 0; i < 1_000; i++) {
  await handle.acquire();
  await handle.release();
}
const cpu = process.cpuUsage();
const start = performance.now();
for (let i = 0; i < n; i++) {
  await handle.acquire();
  await handle.release();
}
const wall = performance.now() - start;
const used = process.cpuUsage(cpu);
process.stdout.write(
  `${id}: ${((wall * 1000) / n).toFixed(1)} µs wall, ${((used.user + used.system) / n).toFixed(1)} µs CPU (user ${(used.user / n).toFixed(1)}, system ${(used.system / n).toFixed(1)}) per cycle\n`,
);
redis?.disconnect();
memcached?.close();
await server.stop();
