/**
 * The lock recipe's nodes (Curator's InterProcessMutex, "protected" mode): under a lock's node,
 * each contender creates an ephemeral sequential node `_c_<guid>-lock-<sequence>`; the lowest
 * sequence holds. The guid is derived from the attempt's owner token, so a create whose reply was
 * lost is found again by name. The node's data says what the contender is: its owner token, the
 * holding's `expire` (ms, or null), and whether it is still waiting (a waiter's node carries no
 * deadline until it is granted).
 */
import { createHash } from 'node:crypto';

import {
  codeOf,
  rawOf,
  type RawZkClient,
  ZK,
  type ZkOpResult,
  type ZkStat,
  type ZooKeeperClient,
  zookeeperDriver,
} from './client.js';

/** Where every lock lives (under the connect string's chroot, if any). */
export const ROOT = '/nestjs-sherlock';
/** A node the backend writes to read the server's clock (its mtime). Never a lock's node name. */
export const CLOCK = `${ROOT}/.clock`;

/** The node of a lock: its key, percent-encoded into one path segment ('.' too: '.' and '..' are not names). */
export const lockPath = (key: string) =>
  `${ROOT}/${encodeURIComponent(key).replace(/\./gu, '%2E').replace(/\*/gu, '%2A')}`;

/** The key of a lock node's name (undefined: not a lock's node). */
export function keyOfNode(name: string): string | undefined {
  if (name.startsWith('.')) return undefined;
  try {
    return decodeURIComponent(name);
  } catch {
    return undefined;
  }
}

/** The guid of an attempt's nodes: a hash of its owner token (which may carry metadata). */
export const guidOf = (token: string) =>
  createHash('sha256').update(token).digest('hex').slice(0, 32);

const prefixOf = (guid: string) => `_c_${guid}-lock-`;

/** What a contender's node says. */
export interface NodeData {
  /** The owner token. */
  readonly t: string;
  /** The holding's expire in ms from the node's mtime (null: none). */
  readonly e: number | null;
  /** 1 while it waits in line (no deadline yet). */
  readonly w?: 1;
}

export const encodeData = (data: NodeData): Uint8Array => Buffer.from(JSON.stringify(data), 'utf8');

export function decodeData(buffer: Uint8Array | undefined | null): NodeData | undefined {
  if (!buffer || buffer.length === 0) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(buffer).toString('utf8')) as Partial<NodeData>;
    if (typeof parsed.t !== 'string') return undefined;
    return {
      t: parsed.t,
      e: typeof parsed.e === 'number' ? parsed.e : null,
      ...(parsed.w ? { w: 1 } : {}),
    };
  } catch {
    return undefined;
  }
}

/** A long of a stat (8 bytes, big-endian) as a bigint. */
export const long = (buffer: Uint8Array) =>
  new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength).getBigInt64(0);

/** The sequence of a contender's node name (-1: not one of ours). */
export function sequenceOf(name: string): number {
  const at = name.lastIndexOf('-lock-');
  if (!name.startsWith('_c_') || at < 0) return -1;
  const sequence = Number(name.slice(at + 6));
  return Number.isInteger(sequence) ? sequence : -1;
}

/** The contenders' node names in line order (lowest sequence first). */
export function inLine(children: readonly string[]): string[] {
  return children
    .filter((name) => sequenceOf(name) >= 0)
    .sort((a, b) => sequenceOf(a) - sequenceOf(b));
}

/** One driver call as a promise, once the client is connected. */
export async function call<T>(
  zk: ZooKeeperClient,
  run: (raw: RawZkClient, done: (error: Error | null, result: T) => void) => void,
): Promise<T> {
  await zk.ready();
  return new Promise<T>((resolve, reject) =>
    run(rawOf(zk), (error, result) => (error ? reject(error) : resolve(result))),
  );
}

/** `fn`'s result, or `fallback` when it failed with one of `codes`. */
export async function unless<T, F>(codes: readonly number[], fallback: F, fn: () => Promise<T>) {
  try {
    return await fn();
  } catch (error) {
    const code = codeOf(error);
    if (code !== undefined && codes.includes(code)) return fallback;
    throw error;
  }
}

export const getChildren = (zk: ZooKeeperClient, path: string) =>
  unless([ZK.NO_NODE], [] as string[], () =>
    call<string[]>(zk, (raw, done) => raw.getChildren(path, done)),
  );

/** A node's data and stat, or undefined if it is gone. */
export const getData = (zk: ZooKeeperClient, path: string) =>
  unless([ZK.NO_NODE], undefined, () =>
    call<{ data: NodeData | undefined; stat: ZkStat }>(zk, (raw, done) =>
      raw.getData(path, (error, data, stat) =>
        done(error, error ? (undefined as never) : { data: decodeData(data), stat }),
      ),
    ),
  );

/** Sets a node's data; its new stat, or undefined if it is gone (or not at `version`). */
export const setData = (zk: ZooKeeperClient, path: string, data: NodeData, version = -1) =>
  unless([ZK.NO_NODE, ZK.BAD_VERSION], undefined, () =>
    call<ZkStat>(zk, (raw, done) => raw.setData(path, encodeData(data), version, done)),
  );

/** Deletes a node (at `version`); whether it did. */
export const remove = (zk: ZooKeeperClient, path: string, version = -1) =>
  unless([ZK.NO_NODE, ZK.BAD_VERSION], false, async () => {
    await call<void>(zk, (raw, done) => raw.remove(path, version, done));
    return true;
  });

/** The server's clock now, in ms since the epoch: the mtime of a write to the clock node. */
export async function serverNow(zk: ZooKeeperClient): Promise<number> {
  const stat = await setData(zk, CLOCK, { t: '', e: null });
  if (stat) return Number(long(stat.mtime));
  await unless([ZK.NODE_EXISTS], '', () =>
    call<string>(zk, (raw, done) => raw.mkdirp(CLOCK, done)),
  );
  const again = await setData(zk, CLOCK, { t: '', e: null });
  if (!again) throw new Error(`ZooKeeper: the clock node ${CLOCK} vanished`);
  return Number(long(again.mtime));
}

/** What a contender's create told. */
export interface Created {
  /** The node's name under the lock's node. */
  readonly name: string;
  /** Its czxid and mtime, when the create's transaction told them. */
  readonly stat?: ZkStat;
  /** Whether it was the lock node's only child right after the create (first in line). */
  readonly alone: boolean;
}

const EMPTY: Uint8Array = Buffer.alloc(0); // node-zookeeper-client asserts a Buffer

/**
 * Creates the contender node of `guid` under `parent` (and `parent` if absent). The create goes
 * in one transaction with a write to `parent` (its data stays empty), whose answer is the
 * parent's stat as of that transaction: every op of a transaction has the same zxid and time,
 * so the parent's mzxid and mtime are the new node's czxid and mtime, and its numChildren says
 * whether the new node is the only one in line. An uncontended acquire is this one round trip
 * (where a create, a `getChildren` and an `exists` were three).
 */
export async function createNode(
  zk: ZooKeeperClient,
  parent: string,
  guid: string,
  data: NodeData,
): Promise<Created> {
  const { EPHEMERAL_SEQUENTIAL } = zookeeperDriver().CreateMode;
  const nodePath = `${parent}/${prefixOf(guid)}`;
  // A plain create (the line is read after it): for a lock node whose ACL lets contenders create
  // children but not write it (one made by hand so).
  const plainCreate = async (): Promise<Created> => ({
    name: nameOf(
      await call<string>(zk, (raw, done) =>
        raw.create(nodePath, encodeData(data), EPHEMERAL_SEQUENTIAL, done),
      ),
    ),
    alone: false,
  });
  // The create may have been applied and its reply lost: find the node by its guid.
  const recover = async (error: unknown): Promise<Created> => {
    if (codeOf(error) === ZK.CONNECTION_LOSS) {
      const found = await findNode(zk, parent, guid);
      if (found !== undefined) return { name: found, alone: false };
    }
    throw error;
  };
  const create = async (): Promise<Created> => {
    const [made, parentWrite] = await call<readonly ZkOpResult[]>(zk, (raw, done) =>
      raw
        .transaction()
        .create(nodePath, encodeData(data), EPHEMERAL_SEQUENTIAL)
        .setData(parent, EMPTY, -1)
        .commit(done),
    );
    if (made?.path === undefined) throw new Error('ZooKeeper: a create answered without a path');
    const name = nameOf(made.path);
    const stat = parentWrite?.stat;
    if (stat?.mzxid === undefined || typeof stat.numChildren !== 'number') {
      return { name, alone: false };
    }
    return {
      name,
      stat: { czxid: stat.mzxid, mtime: stat.mtime, version: 0 },
      alone: stat.numChildren === 1,
    };
  };
  try {
    return await create();
  } catch (error) {
    const code = codeOf(error);
    if (code === ZK.NO_AUTH) return plainCreate().catch(recover);
    if (code === ZK.NO_NODE) {
      await unless([ZK.NODE_EXISTS], '', () =>
        call<string>(zk, (raw, done) => raw.mkdirp(parent, done)),
      );
      return await create();
    }
    return recover(error);
  }
}

const nameOf = (path: string) => path.slice(path.lastIndexOf('/') + 1);

/** The name of `guid`'s node under `parent`, if there is one. */
export async function findNode(
  zk: ZooKeeperClient,
  parent: string,
  guid: string,
): Promise<string | undefined> {
  const prefix = prefixOf(guid);
  return (await getChildren(zk, parent)).find((name) => name.startsWith(prefix));
}

/**
 * Removes `guid`'s node under `parent` if it exists (an attempt given up on, whose create may
 * have landed). When the connection fails, tries again once connected (the node would otherwise
 * stay, ephemeral, for as long as the session lives).
 */
export async function removeByGuid(
  zk: ZooKeeperClient,
  parent: string,
  guid: string,
): Promise<boolean> {
  try {
    const name = await findNode(zk, parent, guid);
    return name === undefined ? false : await remove(zk, `${parent}/${name}`);
  } catch (error) {
    if (!zk.connected) {
      zk.whenConnected(() => {
        removeByGuid(zk, parent, guid).catch(() => undefined);
      });
    }
    throw error;
  }
}

/** Removes a node in the background (again once connected, if the connection failed). */
export function removeLater(zk: ZooKeeperClient, path: string): void {
  remove(zk, path).catch(() => {
    if (!zk.connected) {
      zk.whenConnected(() => {
        remove(zk, path).catch(() => undefined);
      });
    }
  });
}
