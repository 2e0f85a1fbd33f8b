import type { Redis } from 'ioredis';

/**
 * How many ms the server gives `member` of the sorted set whose key matches `pattern` (a
 * semaphore's permits, a read-write lock's holders: each scored by its expiry in ms on the
 * server's clock) before it expires; NaN when there is no such key or member.
 */
export async function remainingMs(redis: Redis, pattern: string, member: string): Promise<number> {
  const [key] = await redis.keys(pattern);
  if (key === undefined) return Number.NaN;
  const score = await redis.zscore(key, member);
  const [seconds, micros] = await redis.time();
  return (
    Number(score ?? Number.NaN) - (Number(seconds) * 1_000 + Math.floor(Number(micros) / 1_000))
  );
}
