/**
 * Inspection for the Redlock backend: each server is read like a Redis lock, and what a majority
 * of the servers agree on is the answer (the holder a majority stores; the shortest of their TTLs).
 */
import type { InspectionBackend, ListedLock, LockTarget, StoredLock } from '../../core/backend.js';
import { forceReleaseAs, inspectKey, keyTarget, scanNames } from '../redis/inspect.js';
import type { RedisCommands } from '../redis/scripts.js';
import type { RedisQuorum } from './quorum.js';

/** What every server says of `key`; throws when fewer than a majority answered. */
async function readAll(quorum: RedisQuorum, key: string): Promise<StoredLock | null> {
  const replies = await Promise.allSettled(
    quorum.clients.map((client) => inspectKey(client as RedisCommands, key)),
  );
  const answered = replies.filter((r) => r.status === 'fulfilled');
  if (answered.length < quorum.quorum) {
    throw new AggregateError(
      replies.filter((r) => r.status === 'rejected').map((r) => r.reason as unknown),
      `only ${answered.length} of ${replies.length} redis servers answered; a majority is ${quorum.quorum}`,
    );
  }
  const byOwner = new Map<string, number[]>();
  for (const reply of answered) {
    const stored = reply.value;
    if (stored === null) continue;
    const ttls = byOwner.get(stored.owner) ?? [];
    ttls.push(stored.ttl ?? -1);
    byOwner.set(stored.owner, ttls);
  }
  for (const [owner, ttls] of byOwner) {
    if (ttls.length < quorum.quorum) continue;
    const expiring = ttls.filter((t) => t >= 0);
    return { owner, ttl: expiring.length > 0 ? Math.min(...expiring) : -1 };
  }
  return null; // no holder on a majority: not held
}

/** The Redlock backend's inspection primitives; `release` is its owner-checked release. */
export function redlockInspection(
  release: (lock: LockTarget<RedisQuorum>, owner: string) => Promise<boolean>,
): InspectionBackend<RedisQuorum> {
  return {
    inspect: (lock) => readAll(lock.client, lock.key),
    async list(target) {
      const names = new Map<string, string>();
      for (const client of target.client.clients) {
        const found = await scanNames(client, target, target.limit * 2 + 100).catch(
          () => new Map<string, string>(),
        );
        for (const [key, name] of found) names.set(key, name);
      }
      const listed: ListedLock[] = [];
      for (const [key, name] of names) {
        if (listed.length >= target.limit) break;
        const stored = await readAll(target.client, keyTarget(target, key, name).key);
        if (stored) listed.push({ name, key, ...stored });
      }
      return listed;
    },
    forceRelease: (lock) =>
      forceReleaseAs(
        () => readAll(lock.client, lock.key),
        (owner) => release(lock, owner),
      ),
  };
}
