/**
 * Inspection for the zookeeper backend: a lock is held by the first contender node under its
 * node, unless that node's deadline (its mtime + expire) has passed on the server's clock.
 * Inspect reads that node (and counts the waiters behind it); list walks the lock nodes under
 * the root; force-release deletes the holder's node at the version read, which wakes the next
 * waiter (it watches that node).
 */
import type {
  InspectionBackend,
  ListedLock,
  ListTarget,
  LockTarget,
  StoredLock,
} from '../../core/backend.js';
import { nameOfKey } from '../../core/inspect-keys.js';
import type { ZkStat, ZooKeeperClient } from './client.js';
import {
  getChildren,
  getData,
  inLine,
  keyOfNode,
  lockPath,
  long,
  type NodeData,
  remove,
  ROOT,
  serverNow,
} from './nodes.js';

/** The first node of a line, as read now. */
export interface Head {
  readonly path: string;
  readonly data: NodeData | undefined;
  readonly stat: ZkStat;
  /** Its deadline passed on the server's clock. */
  readonly expired: boolean;
  /** Ms left (-1: no expiry; undefined: a waiter granted that has not noticed yet). */
  readonly ttl: number | undefined;
}

/** Reads the node at `path` (undefined: gone); `now` reads the server's clock when needed. */
export async function readHead(
  zk: ZooKeeperClient,
  path: string,
  now: () => Promise<number> = () => serverNow(zk),
): Promise<Head | undefined> {
  const read = await getData(zk, path);
  if (read === undefined) return undefined;
  const { data, stat } = read;
  if (data === undefined || data.w) return { path, data, stat, expired: false, ttl: undefined };
  if (data.e === null) return { path, data, stat, expired: false, ttl: -1 };
  const left = Number(long(stat.mtime)) + data.e - (await now());
  return { path, data, stat, expired: left <= 0, ttl: Math.max(0, left) };
}

/** The holder of the lock whose node is `parent`, and how many wait behind it. */
async function holderOf(zk: ZooKeeperClient, parent: string) {
  for (let round = 0; round < 4; round++) {
    const line = inLine(await getChildren(zk, parent));
    const first = line[0];
    if (first === undefined) return undefined;
    const head = await readHead(zk, `${parent}/${first}`);
    if (head === undefined) continue; // released in between: read again
    return { head, waiting: line.length - 1 };
  }
  return undefined;
}

function storedOf(head: Head, waiting: number): StoredLock {
  return {
    owner: head.data?.t ?? '',
    ...(head.ttl === undefined ? {} : { ttl: head.ttl }),
    fencingToken: long(head.stat.czxid).toString(),
    waiting,
  };
}

export const zookeeperInspection: InspectionBackend<ZooKeeperClient> = {
  async inspect(lock: LockTarget<ZooKeeperClient>) {
    const found = await holderOf(lock.client, lockPath(lock.key));
    if (found === undefined || found.head.expired) return null;
    return storedOf(found.head, found.waiting);
  },

  async list(target: ListTarget<ZooKeeperClient>) {
    const { client, namespace, prefix, limit } = target;
    const listed: ListedLock[] = [];
    const keys = (await getChildren(client, ROOT))
      .map((node) => ({ node, key: keyOfNode(node) }))
      .sort((a, b) => ((a.key ?? '') < (b.key ?? '') ? -1 : 1));
    for (const { node, key } of keys) {
      if (listed.length >= limit) break;
      if (key === undefined) continue;
      const name = nameOfKey(key, namespace, prefix);
      if (name === undefined) continue;
      const found = await holderOf(client, `${ROOT}/${node}`);
      if (found === undefined || found.head.expired) continue;
      listed.push({ name, key, ...storedOf(found.head, found.waiting) });
    }
    return listed;
  },

  /** Deletes the holder's node (at the version read): its watcher, the next waiter, wakes. */
  async forceRelease(lock: LockTarget<ZooKeeperClient>) {
    const zk = lock.client;
    const found = await holderOf(zk, lockPath(lock.key));
    if (found === undefined) return null;
    const deleted = await remove(zk, found.head.path, found.head.stat.version);
    return deleted && !found.head.expired ? storedOf(found.head, found.waiting) : null;
  },
};
