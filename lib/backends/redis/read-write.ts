import type { HandOff, ReadWriteBackend, ReadWriteTarget } from '../../core/backend.js';
import {
  entryFor,
  closeGrantWaiter,
  type GrantWaiter,
  grantOutcome,
  listenForGrant,
  listensAlready,
  openGrantWaiter,
  noteServerTime,
} from './direct-grant.js';
import { takeGrant } from '../../core/dated-grant.js';
import { ACQUIRE_RW, EXTEND_RW, LEAVE_RW, RELEASE_RW, STATE_RW } from './read-write-scripts.js';
import type { RedisCommands } from './scripts.js';
import { siblingKey } from './slots.js';
import { now } from '../../core/timing.js';

/** A blocking acquire's place in line: its entry is `<side> <mode> <channel> <id> <token> <expire>`. */
export type RedisReadWriteWaiter = GrantWaiter;

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

/** Starts listening for a grant (once per acquire), see direct-grant.ts. */
const listen = (rw: ReadWriteTarget, waiter: RedisReadWriteWaiter) =>
  listenForGrant(
    rw,
    waiter,
    (joined) => `${side(rw)} ${joined.mode} ${joined.channel} ${joined.id}`,
    rw.expire === null ? '-' : String(Math.ceil(rw.expire)),
  );

const handOff: HandOff<RedisCommands, RedisReadWriteWaiter, ReadWriteTarget<RedisCommands>> = {
  open: (_rw, wake) => openGrantWaiter(wake),
  // An attempt with a waiter that has not listened yet is a newcomer's (no entry, see acquire):
  // an uncontended acquire makes no waiter. Unless the client's wake channel is subscribed
  // already: then the first attempt carries the waiter's entry.
  openAfterRefusal: true,
  listensAlready,
  listen,
  // Not granted (timed out, aborted, failed): leave the line, give back (to whoever is next) the
  // side a release granted meanwhile, the message being on its way or lost.
  close(rw, waiter, granted) {
    const { readers, writer, fencing, line } = keysOf(rw);
    closeGrantWaiter(waiter, granted, (entry, token) =>
      LEAVE_RW.run(redis(rw), [readers, writer, fencing, line], [side(rw), entry, token]),
    );
  },
  // A grant's message, taken by the waiting acquire as it arrives (no attempt, no round trip).
  takeGrant: (rw, waiter) => takeGrant(waiter, rw),
};

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
    const granted = takeGrant(waiter, rw); // granted by a release: no round trip
    if (granted) return granted;
    const keys = keysOf(rw);
    const expire = rw.expire === null ? '' : String(Math.ceil(rw.expire));
    const { entry, own } = entryFor(waiter, token);
    const sentAt = now();
    const reply = await ACQUIRE_RW.run(
      redis(rw),
      [keys.readers, keys.writer, keys.fencing, keys.line],
      [side(rw), own, expire, entry],
    );
    // A waiter's refusal carries the server's time: it dates a grant's message (grantOf).
    noteServerTime(waiter, sentAt, reply, 2);
    return grantOutcome(reply, own, token);
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
