import type {
  AttemptOutcome,
  ElectionBackend,
  HandOff,
  LockBackend,
  LockTarget,
} from '../../core/backend.js';
import { messages } from '../../core/messages.js';
import { ioredis, type RedisCommands } from './scripts.js';
import { checkWaitForReplicas, type WaitForReplicas } from './sentinel.js';

/**
 * `waitForReplicas`: Redis replicates asynchronously, so a lock written on a master that dies
 * before a replica got the write is lost when that replica is promoted (another client then takes
 * the lock again). With this option set on a client, every write that grants a lock, a
 * semaphore's permit or a read-write lock's side (an acquire, the hand-off to a waiter, an
 * extend), and an election's publishing of who leads and renewal, is followed on the same
 * connection by `WAIT replicas timeout`; fewer acknowledgements than asked and the acquire does
 * not succeed: it releases what it set and fails with `ReplicaAckError` (the `cause` of the
 * `LockBackendError`, an attempt that failed: a blocking acquire tries again until its `timeout`).
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
 * What grants in one Redis primitive (the lock, the semaphore, a read-write lock's side): its
 * acquire, the release that gives back a grant no replica acknowledged, its extend and hand-off.
 */
export interface GrantingPrimitives<T extends LockTarget<RedisCommands>, H, W> {
  acquire(target: T, token: string, waiter?: W): Promise<AttemptOutcome<H>>;
  release(target: T, token: string, held: H | undefined): Promise<boolean>;
  extend?(target: T, token: string, ttl: number, held: H | undefined): Promise<boolean>;
  readonly handOff?: HandOff<RedisCommands, W, T>;
}

/**
 * `primitives` with `waitForReplicas` applied: on a client that asks for it, an acquire's grant
 * (a grant by a release's message then takes one round trip: the waiter confirms it with its own
 * acquire script, a write on its own connection, and WAITs for it) and an extend are WAITed for;
 * a grant too few replicas acknowledged is given back by `release` (which hands it to the next in
 * line) and the attempt fails with `ReplicaAckError`. Everything else is `primitives`' own.
 */
export function withAcks<
  T extends LockTarget<RedisCommands>,
  H,
  W,
  P extends GrantingPrimitives<T, H, W>,
>(primitives: P): P {
  const { acquire, release, extend, handOff } = primitives;
  const takeGrant = handOff?.takeGrant;
  const wrapped: GrantingPrimitives<T, H, W> = {
    // With waitForReplicas a grant by message is confirmed by the waiter's own write and WAIT
    // (acquireAcked below): the session may not take it from the message alone.
    ...(handOff && takeGrant
      ? {
          handOff: {
            ...handOff,
            takeGrant: (target: T, waiter: W) =>
              replicasOf(target.client) ? undefined : takeGrant.call(handOff, target, waiter),
          },
        }
      : {}),
    release,
    // Without waitForReplicas (the common case): the backend's own promise, no async level more.
    acquire: (target, token, waiter) =>
      replicasOf(target.client)
        ? acquireAcked(target, token, waiter)
        : acquire(target, token, waiter),
    ...(extend ? { extend: ackedExtend(extend) } : {}),
  };
  return { ...primitives, ...wrapped };

  /** An acquire on a client with waitForReplicas: the write, then WAIT for it. */
  async function acquireAcked(target: T, token: string, waiter?: W) {
    const wanted = replicasOf(target.client);
    if (!wanted) return acquire(target, token, waiter);
    // A grant by message alone is a write on the releaser's connection: confirm by our own.
    if (waiter) (waiter as GrantedByMessage).grant = undefined;
    const outcome = await acquire(target, token, waiter);
    if (outcome === false || (typeof outcome === 'object' && !outcome.granted)) return outcome;
    try {
      await awaitReplicas(target.client, wanted);
    } catch (err) {
      const owner = (typeof outcome === 'object' ? outcome.ownerToken : undefined) ?? token;
      // Given back (to the next in line); a failure here leaves it to expire.
      await release(target, owner, undefined).catch(() => undefined);
      throw err;
    }
    return outcome;
  }
}

/**
 * `extend` WAITed for on a client with waitForReplicas: an extension too few replicas
 * acknowledged throws `ReplicaAckError` (the master did extend: the holding stays).
 */
function ackedExtend<T extends LockTarget<RedisCommands>, H>(
  extend: (target: T, token: string, ttl: number, held: H | undefined) => Promise<boolean>,
) {
  return (target: T, token: string, ttl: number, held: H | undefined): Promise<boolean> => {
    const wanted = replicasOf(target.client);
    const extended = extend(target, token, ttl, held);
    return wanted ? acked(extended, target.client, wanted) : extended;
  };
}

/** `write` (resolving whether it wrote), then WAIT for it if it did. */
async function acked(
  write: Promise<boolean>,
  client: RedisCommands,
  wanted: WaitForReplicas,
): Promise<boolean> {
  const written = await write;
  if (written) await awaitReplicas(client, wanted);
  return written;
}

/**
 * The Redis backend with `waitForReplicas` applied (`withAcks`) to the lock (mutex) operations
 * that grant, to the semaphore's and the read-write lock's, and to the election's writes: the
 * proclaim of who leads and the renewal of its lease (the election's lock is the lock above).
 */
export function withReplicaAcks<H, W>(
  backend: LockBackend<RedisCommands, H, W>,
): LockBackend<RedisCommands, H, W> {
  const { semaphore, readWrite, election } = backend;
  return {
    ...withAcks(backend),
    ...(semaphore ? { semaphore: withAcks(semaphore) } : {}),
    ...(readWrite ? { readWrite: withAcks(readWrite) } : {}),
    ...(election ? { election: withElectionAcks(election) } : {}),
  };
}

/**
 * The election's writes WAITed for: a proclaim too few replicas acknowledged throws
 * `ReplicaAckError` (the candidate then gives the lock back and campaigns on), a renewal too
 * (it does not count: the leadership is lost when its lease runs out unrenewed).
 */
function withElectionAcks<H>(
  election: ElectionBackend<RedisCommands, H>,
): ElectionBackend<RedisCommands, H> {
  const { proclaim, extend } = election;
  return {
    ...election,
    proclaim(lock, token, term, value, held) {
      const wanted = replicasOf(lock.client);
      const published = proclaim.call(election, lock, token, term, value, held);
      return wanted ? acked(published, lock.client, wanted) : published;
    },
    ...(extend ? { extend: ackedExtend(extend.bind(election)) } : {}),
  };
}
