import type { LockBackend } from '../../core/backend.js';
import { BaseLock, type BaseLockOptions } from '../../core/base-lock.js';
import { nameOfKey } from '../../core/inspect-keys.js';
import { messages } from '../../core/messages.js';
import { backends, type BackendDefinition } from '../../core/registry.js';
import { ClusterLockClient } from './client.js';
import { ClusterLockHub, type LockHubChild } from './hub.js';
import { type MemoryHolding, storedOf } from '../memory/store.js';

export { ClusterLockClient, ClusterLockHub, type LockHubChild };

/** Options of a ClusterLock: the lock options and an optional `ClusterLockClient`. */
export type ClusterLockOptions = BaseLockOptions;

/**
 * A lock shared by the processes of a `node:cluster` (or a parent and its `fork()`ed children)
 * through the primary's `ClusterLockHub`, over IPC: no server. A process that exits frees what
 * it held at once. One host only.
 *
 * @example
 * const lock = new ClusterLock('nightly-report', { expire: 60_000 });
 * await lock.using(async () => buildReport());
 */
export class ClusterLock extends BaseLock<ClusterLockClient> {
  constructor(name: string, options?: ClusterLockOptions) {
    super(name, options);
  }
}

/** A blocking acquire's place in the hub's line. */
interface ClusterWaiter {
  readonly client: ClusterLockClient;
  readonly id: number;
  queued: boolean;
}

let processClient: ClusterLockClient | undefined;

/** The cluster backend: the primary's `ClusterLockHub`, reached over IPC. */
const clusterBackend: LockBackend<ClusterLockClient, undefined, ClusterWaiter> = {
  name: 'cluster',
  library: 'nestjs-sherlock',
  capabilities: {
    fencing: true,
    extend: true,
    handOff: 'push',
    // Shared by every process served by the same hub (the primary plays the server), on one host.
    crossProcess: true,
    expiry: { granularity: 1, minimum: 1, maximum: null, earlyBy: 0 },
  },
  clientClass: () => ClusterLockClient,
  // Nothing: to the primary in a cluster worker, else this process's hub; 'parent': over IPC to
  // the parent (a fork()ed child); 'local': this process's hub.
  connect: (connection) => {
    if (connection === undefined) {
      processClient ??= ClusterLockClient.default();
      return processClient;
    }
    if (connection === 'parent') return ClusterLockClient.toParent();
    if (connection === 'local') return ClusterLockClient.local();
    throw new TypeError(
      messages.invalidOption(
        'connection',
        connection,
        "'parent' (over IPC to the parent process), 'local' (this process's hub) or nothing",
      ),
    );
  },
  // The process's default client is shared by every manager of the process: never closed.
  close: (client) => {
    if (client !== processClient) client.close();
  },

  async acquire(lock, token, waiter) {
    const id = waiter?.queued ? waiter.id : undefined;
    const reply = await lock.client.acquire(lock.key, token, lock.expire, id);
    if (reply.granted) {
      if (waiter) waiter.queued = false; // the hub took it out of line
      return { granted: true, fencingToken: reply.fencingToken };
    }
    return reply;
  },
  async release(lock, token) {
    return (await lock.client.request('release', { key: lock.key, token })) === true;
  },
  async extend(lock, token, ttl) {
    return (await lock.client.request('extend', { key: lock.key, token, ttl })) === true;
  },
  async locked(lock) {
    return (await lock.client.request('locked', { key: lock.key })) === true;
  },
  // A round trip to the hub (the primary, over IPC).
  async ping(client) {
    await client.request('locked', { key: 'nestjs-sherlock:ping' });
  },
  // inspect / list / forceRelease: the hub's store answers (over IPC from a worker).
  inspection: {
    async inspect(lock) {
      const held = (await lock.client.request('inspect', {
        key: lock.key,
      })) as MemoryHolding | null;
      return held ? storedOf(held) : null;
    },
    async list({ client, namespace, prefix, limit }) {
      const raw = namespace === null ? prefix : `${namespace}_${prefix}`;
      const held = (await client.request('list', { key: raw, ttl: limit })) as (MemoryHolding & {
        key: string;
      })[];
      return held.flatMap((h) => {
        const name = nameOfKey(h.key, namespace, prefix);
        return name === undefined ? [] : [{ name, key: h.key, ...storedOf(h) }];
      });
    },
    async forceRelease(lock) {
      const held = (await lock.client.request('forceRelease', {
        key: lock.key,
      })) as MemoryHolding | null;
      return held ? storedOf(held) : null;
    },
  },
  // Waiters wait in the hub's line, woken by a message when the lock is theirs to take.
  handOff: {
    open: (lock, wake) => ({ client: lock.client, id: lock.client.addWaiter(wake), queued: false }),
    async listen(lock, waiter) {
      if (waiter.queued) return true;
      // Marked first: a close() while the request is in flight must still send 'leave' (after
      // it, on the same ordered channel), or the hub would keep a place in line nobody takes.
      waiter.queued = true;
      await waiter.client.request('listen', { key: lock.key, waiter: waiter.id });
      return false; // a release between the last attempt and now was not seen: try once more
    },
    close(lock, waiter) {
      waiter.client.removeWaiter(waiter.id);
      if (waiter.queued) {
        waiter.queued = false;
        waiter.client.request('leave', { key: lock.key, waiter: waiter.id }).catch(() => undefined);
      }
    },
  },
};

export const CLUSTER: BackendDefinition = backends.register({
  ...clusterBackend,
  lockClass: ClusterLock,
});
