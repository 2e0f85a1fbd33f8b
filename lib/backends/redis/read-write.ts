import type { HandOff, ReadWriteBackend, ReadWriteTarget } from '../../core/backend.js';
import { newOwnerToken, now } from '../../core/timing.js';
import { ACQUIRE_RW, EXTEND_RW, LEAVE_RW, RELEASE_RW, STATE_RW } from './read-write-scripts.js';
import { ioredis, type RedisCommands } from './scripts.js';
import { keySlot, siblingKey } from './slots.js';
import { type SubscriberSource, WakeChannels } from './wake-channels.js';

/**
 * A blocking acquire's place in line (the same shape as a lock waiter's, see index.ts): once it
 * listens, its entry `<side> <mode> <channel> <id> <owner token> <expire>` is in the line, and a
 * release may grant it its side by a message alone.
 */
export interface RedisReadWriteWaiter {
  readonly wake: () => void;
  /** Its entry in the line, once it listens. */
  entry?: string;
  leave?: () => void;
  /** Unused here (the lock waiter's shape, which the Redis backend's type shares). */
  woken: boolean;
  closed: boolean;
  /** Its owner token: a release that grants it its side holds it under this token. */
  token?: string;
  /** Until the entry's first trip: the attempt's token replaces the placeholder (as a lock's). */
  unsent?: { readonly head: string; readonly expire: string };
  /** A grant received (the fencing token, when it arrived), not yet taken by an attempt. */
  grant?: { readonly fencingToken: string; readonly at: number };
}

/** The keys of a read-write lock, all in the slot of its key (computed once per side object). */
interface ReadWriteKeys {
  readonly readers: string;
  readonly writer: string;
  readonly fencing: string;
  readonly line: string;
}

const keyCache = new WeakMap<ReadWriteTarget, ReadWriteKeys>();

function keysOf(rw: ReadWriteTarget): ReadWriteKeys {
  let keys = keyCache.get(rw);
  if (!keys) {
    const own = (label: string) => siblingKey(rw.key, rw.namespace, label, `:${rw.key}`);
    keys = {
      readers: own('rwr'),
      writer: own('rww'),
      fencing: siblingKey(rw.key, rw.namespace, 'fence'),
      line: own('rwq'),
    };
    keyCache.set(rw, keys);
  }
  return keys;
}

const redis = (rw: ReadWriteTarget) => rw.client as RedisCommands;
const side = (rw: ReadWriteTarget) => (rw.mode === 'read' ? 'r' : 'w');
const isCluster = (client: object) => client instanceof ioredis().Cluster;

/**
 * Starts listening (once per acquire): subscribes before the next attempt puts the waiter's entry
 * in the line, so that no grant is missed; that attempt follows at once (false).
 */
async function listen(rw: ReadWriteTarget, waiter: RedisReadWriteWaiter): Promise<boolean> {
  if (waiter.entry !== undefined) return true;
  const client = rw.client as unknown as SubscriberSource;
  const cluster = isCluster(client);
  const joined = await WakeChannels.of(client, cluster).join(
    (grant) => {
      if (grant !== undefined && !waiter.closed && waiter.grant === undefined) {
        waiter.grant = { fencingToken: grant, at: now() };
      }
      waiter.wake();
    },
    cluster ? keySlot(rw.key) : undefined,
  );
  if (waiter.closed) {
    joined.leave();
    return true;
  }
  const token = newOwnerToken();
  const expire = rw.expire === null ? '-' : String(Math.ceil(rw.expire));
  const head = `${side(rw)} ${joined.mode} ${joined.channel} ${joined.id}`;
  waiter.token = token;
  waiter.entry = `${head} ${token} ${expire}`;
  waiter.unsent = { head, expire };
  waiter.leave = joined.leave;
  return false;
}

const handOff: HandOff<RedisCommands, RedisReadWriteWaiter, ReadWriteTarget<RedisCommands>> = {
  open: (_rw, wake) => ({ wake, woken: false, closed: false }),
  listen,
  // Not granted (timed out, aborted, failed): leave the line, give back (to whoever is next) the
  // side a release granted meanwhile, the message being on its way or lost.
  close(rw, waiter, granted) {
    waiter.closed = true;
    waiter.leave?.();
    if (granted || waiter.entry === undefined || waiter.token === undefined) return;
    const { readers, writer, fencing, line } = keysOf(rw);
    LEAVE_RW.run(
      redis(rw),
      [readers, writer, fencing, line],
      [side(rw), waiter.entry, waiter.token],
    ).catch(() => undefined);
  },
};

/** The reply of ACQUIRE_RW: the fencing token, or `{ttl}` / `{ttl, rank}` when refused. */
function outcomeOf(reply: unknown) {
  if (typeof reply === 'string') return { granted: true as const, fencingToken: reply };
  const [ttl, rank] = reply as [number, number?];
  return {
    granted: false as const,
    holderTtl: ttl,
    ...(typeof rank === 'number' ? { position: rank } : {}),
  };
}

/**
 * The Redis read-write lock, first come, first served: one Lua script per operation
 * (read-write-scripts.ts) over sorted sets of holders scored by expiry on the server's clock and
 * one line of waiters, all in the key's cluster slot. A release (or a waiter leaving, or an
 * attempt finding expired holders) grants directly to the head of the line: the next writer, or
 * the run of readers at the head, publishing each grant with its fencing token over the same
 * pub/sub channels as a lock's. While anyone is in line, a newcomer does not jump it.
 */
export const redisReadWrite: ReadWriteBackend<RedisCommands, undefined, RedisReadWriteWaiter> = {
  async acquire(rw, token, waiter) {
    const grant = waiter?.grant;
    if (grant && waiter?.token !== undefined) {
      // Granted by a release: the message is the answer, no round trip.
      waiter.grant = undefined;
      const { fencingToken, at } = grant;
      return { granted: true, fencingToken, since: at, ownerToken: waiter.token };
    }
    const keys = keysOf(rw);
    const expire = rw.expire === null ? '' : String(Math.ceil(rw.expire));
    if (waiter?.unsent && !/\s/u.test(token)) {
      // The entry's first trip to the server: it takes this attempt's token (with its metadata).
      waiter.entry = `${waiter.unsent.head} ${token} ${waiter.unsent.expire}`;
      waiter.token = token;
      waiter.unsent = undefined;
    }
    const entry = waiter?.entry ?? '';
    const own = entry === '' ? token : (waiter?.token ?? token);
    const reply = await ACQUIRE_RW.run(
      redis(rw),
      [keys.readers, keys.writer, keys.fencing, keys.line],
      [side(rw), own, expire, entry],
    );
    if (typeof reply === 'string') {
      return own === token
        ? { granted: true, fencingToken: reply }
        : { granted: true, fencingToken: reply, ownerToken: own };
    }
    return outcomeOf(reply);
  },
  async release(rw, token) {
    const { readers, writer, fencing, line } = keysOf(rw);
    const reply = await RELEASE_RW.run(
      redis(rw),
      [readers, writer, fencing, line],
      [side(rw), token],
    );
    return reply === 1;
  },
  async extend(rw, token, ttl) {
    const { readers, writer } = keysOf(rw);
    const args = [side(rw), token, String(Math.ceil(ttl))];
    return (await EXTEND_RW.run(redis(rw), [readers, writer], args)) === 1;
  },
  async state(rw) {
    const { readers, writer, line } = keysOf(rw);
    const [r, w, i] = (await STATE_RW.run(redis(rw), [readers, writer, line], [])) as number[];
    return { readers: Number(r), writer: Number(w) > 0, writerWaiting: Number(i) > 0 };
  },
  handOff,
};
