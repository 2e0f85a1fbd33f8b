import type { AttemptOutcome, LockBackend, LockTarget } from '../../core/backend.js';
import { BaseLock, type BaseLockOptions } from '../../core/base-lock.js';
import { parseConnection } from '../../core/connection.js';
import { backends } from '../../core/registry.js';
import { ZK, type ZkStat, ZooKeeperClient, type ZooKeeperClientOptions } from './client.js';
import { type Head, readHead, zookeeperInspection } from './inspect.js';
import {
  call,
  createNode,
  encodeData,
  getChildren,
  guidOf,
  inLine,
  lockPath,
  long,
  type NodeData,
  remove,
  removeByGuid,
  removeLater,
  setData,
  unless,
} from './nodes.js';

export { ZooKeeperClient, type ZooKeeperClientOptions } from './client.js';

/** Options of a ZooKeeperLock: the lock options and an optional `ZooKeeperClient`. */
export type ZooKeeperLockOptions = BaseLockOptions;

/**
 * A lock in ZooKeeper, with Curator's InterProcessMutex recipe: each contender creates an
 * ephemeral sequential node under the lock's node (`/nestjs-sherlock/<key>`); the lowest
 * sequence holds; a waiter watches only the node right ahead of it, so a release wakes one
 * waiter, first come first served; a holder whose session dies (its process killed) loses its
 * node when ZooKeeper expires the session. The fencing token is the holder node's czxid (the
 * transaction id of its create: it only grows, across the whole ensemble, even if the lock's
 * node is deleted and made again). `expire` is a deadline kept in the holder's node and judged
 * on ZooKeeper's clock by the next contender. See docs/zookeeper.md.
 *
 * @example
 * const lock = new ZooKeeperLock('deploy', { client: new ZooKeeperClient('127.0.0.1:2181') });
 */
export class ZooKeeperLock extends BaseLock {
  constructor(name: string, options?: ZooKeeperLockOptions) {
    super(name, options);
  }
}

/** What a holding keeps: its node, and its deadline's start (server ms) and length. */
interface Held {
  readonly path: string;
  mtime: number;
  expire: number | null;
}

/** A blocking acquire's place in line: its node, once created, and the node it watches. */
interface ZkWaiter {
  readonly wake: () => void;
  closed: boolean;
  /** The waiter's node (a path), once created. */
  node?: string | undefined;
  /** The node right ahead of it, as its last attempt read the line. */
  predecessor?: string | undefined;
  /** The node a watch is set on (it fires once). */
  watching?: string | undefined;
}

const zkOf = (lock: Pick<LockTarget, 'client'>) => lock.client as ZooKeeperClient;

/** How many times an attempt reads the line again after removing an expired holder. */
const JUDGE_ROUNDS = 3;

/** A node vanished under the attempt (force-released, or its session expired). */
const GONE = Symbol('gone');

type Look =
  | typeof GONE
  | { readonly first: true }
  | {
      readonly first: false;
      readonly position: number;
      readonly predecessor: string;
      readonly holderTtl?: number;
    };

/**
 * Reads the line under `parent` as seen from the node `name`: first, or its position, the node
 * right ahead and the holder's time left. An expired holder (its deadline passed on the server's
 * clock, `now`) is removed (at the version read, so that an extend in between wins) and the line
 * read again. `judge`: whether to look at the holder at all (a waiter further back does not).
 */
async function look(
  zk: ZooKeeperClient,
  parent: string,
  name: string,
  now: () => Promise<number>,
  judge: (position: number) => boolean,
): Promise<Look> {
  for (let round = 0; ; round++) {
    const line = inLine(await getChildren(zk, parent));
    const index = line.indexOf(name);
    if (index < 0) return GONE;
    if (index === 0) return { first: true };
    const position = index - 1;
    const predecessor = `${parent}/${line[index - 1]}`;
    if (!judge(position) || round >= JUDGE_ROUNDS) return { first: false, position, predecessor };
    const head: Head | undefined = await readHead(zk, `${parent}/${line[0]}`, now);
    if (head === undefined || head.expired) {
      if (head?.expired) await remove(zk, head.path, head.stat.version);
      continue;
    }
    return {
      first: false,
      position,
      predecessor,
      ...(head.ttl === undefined ? {} : { holderTtl: head.ttl }),
    };
  }
}

const granted = (path: string, stat: ZkStat, expire: number | null) => ({
  granted: true as const,
  fencingToken: long(stat.czxid).toString(),
  held: { path, mtime: Number(long(stat.mtime)), expire } satisfies Held,
});

/** The stat of a node (undefined: gone). */
const statOf = async (zk: ZooKeeperClient, path: string) =>
  (await call<ZkStat | null>(zk, (raw, done) => raw.exists(path, done))) ?? undefined;

async function acquire(
  lock: LockTarget,
  token: string,
  waiter: ZkWaiter | undefined,
): Promise<AttemptOutcome<Held>> {
  const zk = zkOf(lock);
  const parent = lockPath(lock.key);
  const holding: NodeData = { t: token, e: lock.expire };
  const waiting: NodeData = { ...holding, w: 1 };

  if (waiter === undefined || waiter.node === undefined) {
    // A new node, holding from its create if it is first in line.
    const made = await createNode(zk, parent, guidOf(token), holding);
    const name = made.name;
    const path = `${parent}/${name}`;
    if (waiter?.closed) {
      await remove(zk, path); // the acquire ended while this attempt ran: leave no node in line
      return false;
    }
    // The only node in line right after its create (told by the create's own transaction):
    // first in line, holding from its create, with no read of the line.
    if (made.alone && made.stat) return granted(path, made.stat, lock.expire);
    // A one-shot attempt's clock is its node's creation time, which the create may have told.
    let created: ZkStat | undefined = waiter ? undefined : made.stat;
    // The server's clock: a waiter's node turns into a waiting one (a write, whose mtime is now);
    // a one-shot attempt reads its node's creation time.
    const now = async () => {
      created ??= waiter ? await setData(zk, path, waiting) : await statOf(zk, path);
      if (created === undefined) throw GONE;
      return Number(long(created.mtime));
    };
    const found = await lookOrGone(
      zk,
      parent,
      name,
      now,
      (position) => waiter === undefined || position === 0,
    );
    if (found !== GONE && found.first) {
      // First in line: it holds from its create (or from its turning into a waiting node just now).
      const stat = created ?? (await statOf(zk, path));
      if (stat === undefined) return false;
      if (created && waiter) {
        const back = await setData(zk, path, holding);
        return back ? granted(path, back, lock.expire) : false;
      }
      return granted(path, stat, lock.expire);
    }
    if (waiter === undefined || found === GONE) {
      await remove(zk, path);
      return refused(found);
    }
    if (created === undefined) await now(); // becomes a waiting node (it has no deadline yet)
    waiter.node = path;
    waiter.predecessor = found.predecessor;
    return refused(found);
  }

  // A waiter's later attempt: its node is its place in line.
  const path = waiter.node;
  const name = path.slice(parent.length + 1);
  const now = async () => {
    const stat = await setData(zk, path, waiting);
    if (stat === undefined) throw GONE;
    return Number(long(stat.mtime));
  };
  const found = await lookOrGone(zk, parent, name, now, (position) => position === 0);
  if (found === GONE) {
    waiter.node = undefined; // lost its place (force-released, or the session expired): queue again
    waiter.predecessor = undefined;
    return false;
  }
  if (found.first) {
    const stat = await setData(zk, path, holding);
    waiter.node = undefined;
    waiter.predecessor = undefined;
    if (stat === undefined) return false;
    return granted(path, stat, lock.expire);
  }
  waiter.predecessor = found.predecessor;
  return refused(found);
}

async function lookOrGone(
  zk: ZooKeeperClient,
  parent: string,
  name: string,
  now: () => Promise<number>,
  judge: (position: number) => boolean,
): Promise<Look> {
  try {
    return await look(zk, parent, name, now, judge);
  } catch (error) {
    if (error === GONE) return GONE;
    throw error;
  }
}

function refused(found: Look): AttemptOutcome<Held> {
  if (found === GONE || found.first) return false;
  return {
    granted: false,
    position: found.position,
    ...(found.holderTtl === undefined ? {} : { holderTtl: found.holderTtl }),
  };
}

/** Deletes the holding's node; an attempt given up on (no `held`) is found by its guid. */
async function release(lock: LockTarget, token: string, held: Held | undefined) {
  const zk = zkOf(lock);
  if (held === undefined) return removeByGuid(zk, lockPath(lock.key), guidOf(token));
  if (held.expire === null) return remove(zk, held.path);
  // One transaction: a write (its mtime is the server's clock now) and the delete. A holding
  // past its deadline was not this owner's any more (a contender could have taken it): the
  // node goes all the same, and the release reports it was not held.
  const deadline = held.mtime + held.expire;
  const results = await unless([ZK.NO_NODE], undefined, () =>
    call<readonly { readonly stat?: ZkStat }[]>(zk, (raw, done) =>
      raw
        .transaction()
        .setData(held.path, encodeData({ t: token, e: held.expire }), -1)
        .remove(held.path, -1)
        .commit(done),
    ),
  );
  const stat = results?.[0]?.stat;
  return stat !== undefined && Number(long(stat.mtime)) < deadline;
}

/**
 * Moves the holding's deadline: its node's data says `ttl`, counted from the write's mtime. A
 * holding whose deadline had passed on the server's clock before this write is over (a contender
 * could have taken it): its node is removed and the extend refused.
 */
async function extend(lock: LockTarget, token: string, ttl: number, held: Held | undefined) {
  if (held === undefined) return false;
  const zk = zkOf(lock);
  const stat = await setData(zk, held.path, { t: token, e: ttl });
  if (stat === undefined) return false;
  const mtime = Number(long(stat.mtime));
  if (held.expire !== null && mtime >= held.mtime + held.expire) {
    await remove(zk, held.path);
    return false;
  }
  held.mtime = mtime;
  held.expire = ttl;
  return true;
}

/** A client from a connect string (`host:port,host:port/chroot`), a list of servers, or options. */
function connectZooKeeper(connection: unknown): ZooKeeperClient {
  if (connection === undefined) return new ZooKeeperClient();
  const { servers, options } = parseConnection('zookeeper', connection, 'servers');
  const { sessionTimeout, spinDelay, ...rest } = options;
  const unknown = Object.keys(rest);
  if (servers.length === 0 || unknown.length > 0) {
    throw new TypeError(
      `Invalid option 'connection': ${JSON.stringify(connection)}; expected a ZooKeeper connect string (host:port[,host:port...][/chroot]), an array of host:port, or { servers, sessionTimeout?, spinDelay? } for the zookeeper backend`,
    );
  }
  const number = (key: string, value: unknown) => {
    if (value === undefined) return undefined;
    if (typeof value === 'number' && Number.isFinite(value) && value > 0) return value;
    throw new TypeError(
      `Invalid option 'connection.${key}': ${JSON.stringify(value)}; expected a number of milliseconds > 0`,
    );
  };
  const clientOptions: ZooKeeperClientOptions = {
    ...(sessionTimeout === undefined
      ? {}
      : { sessionTimeout: number('sessionTimeout', sessionTimeout) }),
    ...(spinDelay === undefined ? {} : { spinDelay: number('spinDelay', spinDelay) }),
  };
  return new ZooKeeperClient(servers.join(','), clientOptions);
}

/** The zookeeper backend: Curator's lock recipe, deadlines on the server's clock, push hand-off. */
const zookeeperBackend: LockBackend<ZooKeeperClient, Held, ZkWaiter> = {
  name: 'zookeeper',
  library: 'node-zookeeper-client',
  capabilities: {
    fencing: true,
    extend: true,
    handOff: 'push',
    crossProcess: true,
    // Deadlines are the server's milliseconds (node mtimes); a contender removes an expired holder.
    expiry: { granularity: 1, minimum: 1, maximum: null, earlyBy: 0 },
  },
  unsupported: {
    semaphore:
      "this version implements Curator's mutex recipe only (a semaphore needs its lease recipe)",
    readWrite:
      "this version implements Curator's mutex recipe only (a read-write lock needs its read-write recipe)",
    election: 'this version implements no election over its lock recipe',
  },
  clientClass: () => ZooKeeperClient,
  connect: connectZooKeeper,
  close: (client) => client.close(),
  checkKey(key) {
    try {
      encodeURIComponent(key);
      return undefined;
    } catch {
      return 'it is not well-formed Unicode (a lone surrogate)';
    }
  },

  acquire,
  release,
  extend,

  async locked(lock) {
    const zk = zkOf(lock);
    const parent = lockPath(lock.key);
    for (let round = 0; round <= JUDGE_ROUNDS; round++) {
      const line = inLine(await getChildren(zk, parent));
      if (line.length === 0) return false;
      if (line.length > 1) return true; // a waiter takes over whatever the holder's state
      const head = await readHead(zk, `${parent}/${line[0]}`);
      if (head === undefined) continue;
      return !head.expired;
    }
    return true;
  },

  /** `exists('/')`: one read round trip. */
  async ping(client) {
    await call(client, (raw, done) => raw.exists('/', done));
  },

  inspection: zookeeperInspection,

  /**
   * A waiter watches the node right ahead of it (one watch, one waiter woken per release). The
   * watch is set with `exists`: a predecessor already gone (deleted between the attempt's read
   * of the line and the watch) makes the core attempt again at once.
   */
  handOff: {
    open: (_lock, wake) => ({ wake, closed: false }),
    async listen(lock, waiter) {
      const predecessor = waiter.predecessor;
      if (predecessor === undefined) return false;
      if (waiter.watching === predecessor) return true;
      const zk = zkOf(lock);
      // Marked before the request: the watch's event can arrive in the same read as the reply to
      // exists(), before this function resumes (a deletion right after the watch was set). Were
      // it marked after, that event would be dropped and the waiter left to its fallback poll.
      waiter.watching = predecessor;
      let stat: ZkStat | null;
      try {
        stat = await call<ZkStat | null>(zk, (raw, done) =>
          raw.exists(
            predecessor,
            () => {
              if (waiter.watching !== predecessor) return;
              waiter.watching = undefined; // a ZooKeeper watch fires once
              if (!waiter.closed) waiter.wake();
            },
            done,
          ),
        );
      } catch (error) {
        if (waiter.watching === predecessor) waiter.watching = undefined;
        throw error;
      }
      if (stat === null) {
        if (waiter.watching === predecessor) waiter.watching = undefined;
        return false;
      }
      return true;
    },
    close(lock, waiter, granted) {
      waiter.closed = true;
      waiter.watching = undefined;
      const node = waiter.node;
      waiter.node = undefined;
      if (!granted && node !== undefined) removeLater(zkOf(lock), node);
    },
  },
};

export const ZOOKEEPER = backends.register({ ...zookeeperBackend, lockClass: ZooKeeperLock });
