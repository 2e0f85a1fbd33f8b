/**
 * Inspection for the Redis backends (issue 12): read a lock's holder, list held locks with
 * `SCAN` (never `KEYS`), and force-release. Kept apart from the acquire/release scripts: it only
 * reads, and force-release goes through the backend's own owner-checked release (so a release
 * that wakes or hands over to the next waiter does the same here).
 */
import type {
  InspectionBackend,
  ListedLock,
  ListTarget,
  LockTarget,
  StoredLock,
} from '../../core/backend.js';
import { nameOfKey } from '../../core/inspect-keys.js';
import { type RedisCommands, Script } from './scripts.js';

/**
 * The holder of KEYS[1] (a string: a lock; any other type is not a lock), its PTTL, and how many
 * wait in the queue KEYS[2] (absent: '' and 0). Returns `false` when free.
 */
export const INSPECT = new Script(`
if redis.call('type', KEYS[1])['ok'] ~= 'string' then return false end
local waiting = 0
if KEYS[2] ~= nil then waiting = redis.call('zcard', KEYS[2]) end
return {redis.call('get', KEYS[1]), redis.call('pttl', KEYS[1]), waiting}`);

/** What `SCAN` needs of an ioredis client (and of each master of a Cluster). */
interface Scanning extends RedisCommands {
  scan(cursor: string, ...args: (string | number)[]): Promise<[string, string[]]>;
  nodes?(role: 'master'): Scanning[];
}

/** Reads one lock: `queue` is its waiter queue key, if it has one. */
export async function inspectKey(
  client: RedisCommands,
  key: string,
  queue?: string,
): Promise<StoredLock | null> {
  const reply = await INSPECT.run(client, queue === undefined ? [key] : [key, queue], []);
  if (!Array.isArray(reply)) return null;
  const [owner, ttl, waiting] = reply as [string | null, number, number];
  if (typeof owner !== 'string' || ttl === -2) return null;
  return queue === undefined ? { owner, ttl } : { owner, ttl, waiting };
}

/** Escapes the glob characters of `text` for `SCAN MATCH`. */
export const globEscape = (text: string) => text.replace(/[*?[\]\\]/gu, '\\$&');

/**
 * The keys of the namespace whose names start with `prefix` on one server (every master of a
 * Cluster), by `SCAN ... MATCH ... COUNT 500`: many short steps, never one blocking command.
 * Stops once `enough` keys were found.
 */
export async function scanNames(
  client: object,
  target: Pick<ListTarget, 'namespace' | 'prefix'>,
  enough: number,
): Promise<Map<string, string>> {
  const { namespace, prefix } = target;
  const pattern = `${globEscape(namespace === null ? '' : `${namespace}_`)}${globEscape(prefix)}*`;
  const scanning = client as Scanning;
  const servers = typeof scanning.nodes === 'function' ? scanning.nodes('master') : [scanning];
  const found = new Map<string, string>(); // key -> name
  for (const server of servers) {
    let cursor = '0';
    do {
      const [next, keys] = await server.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      for (const key of keys) {
        const name = nameOfKey(key, namespace, prefix);
        if (name !== undefined) found.set(key, name);
      }
    } while (cursor !== '0' && found.size < enough);
    if (found.size >= enough) break;
  }
  return found;
}

/** Lists held locks: scans names, then reads each with `read`. */
export async function listKeys(
  target: ListTarget,
  read: (key: string, name: string) => Promise<StoredLock | null>,
): Promise<ListedLock[]> {
  // Keys of other kinds (semaphores, a user's own keys in the namespace) are skipped by `read`.
  const names = await scanNames(target.client, target, target.limit * 2 + 100);
  const found: ListedLock[] = [];
  const entries = [...names];
  for (let i = 0; i < entries.length && found.length < target.limit; i += 50) {
    const batch = entries.slice(i, i + 50);
    const read50 = await Promise.all(batch.map(([key, name]) => read(key, name)));
    read50.forEach((stored, j) => {
      const entry = batch[j];
      if (stored && entry) found.push({ name: entry[1], key: entry[0], ...stored });
    });
  }
  return found.slice(0, target.limit);
}

/**
 * Deletes the lock whoever holds it by reading its owner and releasing as that owner (the
 * backend's own release: it wakes the next waiter). Tried again if another holder took the lock
 * in between; resolves what it deleted, or `null` when free.
 */
export async function forceReleaseAs(
  read: () => Promise<StoredLock | null>,
  release: (owner: string) => Promise<boolean>,
): Promise<StoredLock | null> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const stored = await read();
    if (stored === null) return null;
    if (await release(stored.owner)) return stored;
  }
  throw new Error('the lock changed hands 5 times while it was being force-released');
}

/** The target of one key found by a listing, to read it like a lock. */
export const keyTarget = <C extends object>(
  target: ListTarget<C>,
  key: string,
  name: string,
): LockTarget<C> => ({
  name,
  key,
  namespace: target.namespace,
  expire: null,
  operationTimeout: 5_000,
  client: target.client,
});

/**
 * The Redis backend's inspection primitives: `queueOf` names a lock's waiter queue, `release` is
 * the backend's owner-checked release (which wakes the next waiter).
 */
export function redisInspection(
  queueOf: (lock: LockTarget) => string,
  release: (lock: LockTarget, owner: string) => Promise<boolean>,
): InspectionBackend {
  const read = (lock: LockTarget) =>
    inspectKey(lock.client as RedisCommands, lock.key, queueOf(lock));
  return {
    inspect: read,
    list: (target) => listKeys(target, (key, name) => read(keyTarget(target, key, name))),
    forceRelease: (lock) =>
      forceReleaseAs(
        () => read(lock),
        (owner) => release(lock, owner),
      ),
  };
}
