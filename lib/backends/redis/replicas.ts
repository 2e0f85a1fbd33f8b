import type { LockBackend, LockTarget } from '../../core/backend.js';
import { messages } from '../../core/messages.js';
import { RELEASE_AND_GRANT, ioredis, type RedisCommands } from './scripts.js';
import { checkWaitForReplicas, type WaitForReplicas } from './sentinel.js';
import { siblingKey } from './slots.js';

/**
 * `waitForReplicas`: Redis replicates asynchronously, so a lock written on a master that dies
 * before a replica got the write is lost when that replica is promoted (another client then takes
 * the lock again). With this option set on a client, every write that grants a lock (an acquire,
 * the hand-off to a waiter, an extend) is followed on the same connection by
 * `WAIT replicas timeout`; fewer acknowledgements than asked and the acquire does not succeed: it
 * releases what it set and fails with `ReplicaAckError` (the `cause` of the `LockBackendError`,
 * an attempt that failed: a blocking acquire tries again until its `timeout`).
 */

/** The write was not acknowledged by enough replicas in time (see `waitForReplicas`). */
export class ReplicaAckError extends Error {
  override readonly name = 'ReplicaAckError';
  constructor(
    /** How many replicas acknowledged the write within the timeout. */
    readonly acknowledged: number,
    /** How many were asked for. */
    readonly wanted: number,
    readonly timeout: number,
  ) {
    super(
      `WAIT ${wanted} ${timeout}: only ${acknowledged} replica(s) acknowledged the lock's write within ${timeout} ms (waitForReplicas asks for ${wanted}); the lock was not granted`,
    );
  }
}

const settings = new WeakMap<object, WaitForReplicas>();

interface Waits {
  wait?(replicas: number, timeout: number): Promise<unknown>;
  call?(command: string, ...args: (string | number)[]): Promise<unknown>;
}

/**
 * Makes every lock taken through `client` (an ioredis `Redis`, e.g. one connected through
 * Sentinel) wait for `replicas` replicas to acknowledge its write within `timeout` ms before it
 * counts as acquired or extended. Returns the client. A `connection` setting does the same with
 * its `waitForReplicas` entry (or the URL's `waitForReplicas` parameter).
 *
 * @example
 * import { Redis } from 'ioredis';
 * const client = waitForReplicas(
 *   new Redis({ sentinels: [{ host: 'sentinel-1', port: 26379 }], name: 'mymaster' }),
 *   { replicas: 1, timeout: 100 },
 * );
 */
export function waitForReplicas<C extends object>(client: C, options: WaitForReplicas): C {
  const checked = checkWaitForReplicas(options);
  if (client instanceof ioredis().Cluster) {
    throw new TypeError(
      messages.invalidOption(
        'client',
        client,
        'an ioredis Redis client (waitForReplicas does not apply to a Redis Cluster client: WAIT would go to a random node)',
      ),
    );
  }
  settings.set(client, checked);
  return client;
}

/** The WAIT settings of `client`, if any. */
export const replicasOf = (client: object): WaitForReplicas | undefined => settings.get(client);

/** Sends `WAIT` on the client's connection; throws ReplicaAckError when fewer acknowledged. */
async function awaitReplicas(client: RedisCommands, wanted: WaitForReplicas): Promise<void> {
  const c = client as unknown as Waits;
  const reply = c.wait
    ? await c.wait(wanted.replicas, wanted.timeout)
    : await c.call?.('WAIT', wanted.replicas, wanted.timeout);
  const acknowledged = Number(reply);
  if (!(acknowledged >= wanted.replicas)) {
    throw new ReplicaAckError(acknowledged, wanted.replicas, wanted.timeout);
  }
}

interface GrantedByMessage {
  grant?: unknown;
}

/**
 * The Redis backend with `waitForReplicas` applied to the lock (mutex) operations that grant:
 * acquire (a grant by a release's message then takes one round trip: the waiter confirms with an
 * acquire script, which is a write on its own connection, and WAITs for it) and extend.
 */
export function withReplicaAcks<W>(
  backend: LockBackend<RedisCommands, undefined, W>,
): LockBackend<RedisCommands, undefined, W> {
  const { acquire, extend, handOff } = backend;
  return {
    ...backend,
    // With waitForReplicas a grant by message is confirmed by the waiter's own write and WAIT
    // (acquireAcked below): the session may not take it from the message alone.
    ...(handOff?.takeGrant
      ? {
          handOff: {
            ...handOff,
            takeGrant: (lock: LockTarget<RedisCommands>, waiter: W) =>
              replicasOf(lock.client) ? undefined : handOff.takeGrant?.(lock, waiter),
          },
        }
      : {}),
    // Without waitForReplicas (the common case): the backend's own promise, no async level more.
    acquire: (lock, token, waiter) =>
      replicasOf(lock.client) ? acquireAcked(lock, token, waiter) : acquire(lock, token, waiter),
    async extend(lock, token, ttl, held) {
      if (!extend) throw new Error('extend() is not implemented');
      const extended = await extend(lock, token, ttl, held);
      const wanted = replicasOf(lock.client);
      if (extended && wanted) await awaitReplicas(lock.client, wanted);
      return extended;
    },
  };

  /** An acquire on a client with waitForReplicas: the write, then WAIT for it. */
  async function acquireAcked(lock: LockTarget<RedisCommands>, token: string, waiter?: W) {
    const wanted = replicasOf(lock.client);
    if (!wanted) return acquire(lock, token, waiter);
    // A grant by message alone is a write on the releaser's connection: confirm by our own.
    if (waiter) (waiter as GrantedByMessage).grant = undefined;
    const outcome = await acquire(lock, token, waiter);
    if (outcome === false || (typeof outcome === 'object' && !outcome.granted)) return outcome;
    try {
      await awaitReplicas(lock.client, wanted);
    } catch (err) {
      const owner = typeof outcome === 'object' ? outcome.ownerToken : undefined;
      await giveBack(lock, owner ?? token);
      throw err;
    }
    return outcome;
  }
}

/** Releases (and hands to the next in line) a lock whose grant was not acknowledged. */
async function giveBack(lock: LockTarget<RedisCommands>, owner: string): Promise<void> {
  const fencing = siblingKey(lock.key, lock.namespace, 'fence');
  const queue = siblingKey(lock.key, lock.namespace, 'queue', `:${lock.key}`);
  await RELEASE_AND_GRANT.run(lock.client, [lock.key, fencing, queue], [owner]).catch(
    () => undefined,
  );
}
