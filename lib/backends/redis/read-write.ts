import { randomBytes } from 'node:crypto';
import type { HandOff, ReadWriteBackend, ReadWriteTarget } from '../../core/backend.js';
import { ACQUIRE_RW, EXTEND_RW, LEAVE_RW, RELEASE_RW, STATE_RW } from './read-write-scripts.js';
import type { RedisCommands } from './scripts.js';
import { siblingKey } from './slots.js';
import { type SubscriberSource, WakeChannels } from './wake-channels.js';

/**
 * How long a waiting writer keeps new readers out without attempting again (ms): its attempts
 * renew it every `WRITER_RENEW` ms, so a writer that died (or was frozen) stops blocking readers
 * at most this long after its last attempt, on the server's clock.
 */
export const WRITER_WAIT_TTL = 6_000;
const WRITER_RENEW = 2_000;

/** A blocking acquire's place in line (the same shape as a lock's waiter). */
export interface RedisReadWriteWaiter {
  readonly wake: () => void;
  /** Its wake-up entry `<channel> <id>`, once it listens. */
  entry?: string;
  leave?: () => void;
  woken: boolean;
  closed: boolean;
}

/** A writer waiter's id in the set of waiting writers (made when the waiter is opened). */
const writerIds = new WeakMap<RedisReadWriteWaiter, string>();

/** The keys of a read-write lock, all in the slot of its key (computed once per side object). */
interface ReadWriteKeys {
  readonly readers: string;
  readonly writer: string;
  readonly waiting: string;
  readonly fencing: string;
  readonly readerQueue: string;
  readonly writerQueue: string;
}

const keyCache = new WeakMap<ReadWriteTarget, ReadWriteKeys>();

function keysOf(rw: ReadWriteTarget): ReadWriteKeys {
  let keys = keyCache.get(rw);
  if (!keys) {
    const own = (label: string) => siblingKey(rw.key, rw.namespace, label, `:${rw.key}`);
    keys = {
      readers: own('rwr'),
      writer: own('rww'),
      waiting: own('rwi'),
      fencing: siblingKey(rw.key, rw.namespace, 'fence'),
      readerQueue: own('rwqr'),
      writerQueue: own('rwqw'),
    };
    keyCache.set(rw, keys);
  }
  return keys;
}

const redis = (rw: ReadWriteTarget) => rw.client as RedisCommands;
const side = (rw: ReadWriteTarget) => (rw.mode === 'read' ? 'r' : 'w');

/** Starts listening for wake-ups once per acquire (as for a lock): false = attempt at once. */
async function listen(rw: ReadWriteTarget, waiter: RedisReadWriteWaiter): Promise<boolean> {
  if (waiter.entry !== undefined) return true;
  const joined = await WakeChannels.of(rw.client as unknown as SubscriberSource).join(() => {
    waiter.woken = true;
    waiter.wake();
  });
  if (waiter.closed) {
    joined.leave();
    return true;
  }
  waiter.entry = joined.entry;
  waiter.leave = joined.leave;
  return false;
}

const handOff: HandOff<RedisCommands, RedisReadWriteWaiter, ReadWriteTarget<RedisCommands>> = {
  open(rw, wake) {
    const waiter: RedisReadWriteWaiter = { wake, woken: false, closed: false };
    if (rw.mode === 'write') writerIds.set(waiter, randomBytes(12).toString('base64url'));
    return waiter;
  },
  listen,
  // Not granted (timed out, aborted, failed): leave the line, stop keeping readers out, and wake
  // whoever that lets in.
  close(rw, waiter, granted) {
    waiter.closed = true;
    waiter.leave?.();
    const id = writerIds.get(waiter);
    if (granted || (waiter.entry === undefined && id === undefined)) return;
    const { readers, writer, waiting, readerQueue, writerQueue } = keysOf(rw);
    LEAVE_RW.run(
      redis(rw),
      [readers, writer, waiting, readerQueue, writerQueue],
      [side(rw), waiter.entry ?? '', id ?? ''],
    ).catch(() => undefined);
  },
};

/** The reply of ACQUIRE_RW: the fencing token, or `{ttl}` / `{ttl, rank}` when refused. */
function outcomeOf(reply: unknown, waitingWriter: boolean) {
  if (typeof reply === 'string') return { granted: true as const, fencingToken: reply };
  const [ttl, rank] = reply as [number, number?];
  return {
    granted: false as const,
    holderTtl: ttl,
    ...(typeof rank === 'number' ? { position: rank } : {}),
    ...(waitingWriter ? { renewWithin: WRITER_RENEW } : {}),
  };
}

/**
 * The Redis read-write lock: one Lua script per operation (read-write-scripts.ts) over sorted
 * sets of holders scored by expiry on the server's clock, all in the key's cluster slot. Waiters
 * are woken over the same pub/sub channels as a lock's: a writer's release wakes the next writer
 * (if one waits) or every waiting reader; the last reader's release wakes the next writer.
 */
export const redisReadWrite: ReadWriteBackend<RedisCommands, undefined, RedisReadWriteWaiter> = {
  async acquire(rw, token, waiter) {
    const keys = keysOf(rw);
    const expire = rw.expire === null ? '' : String(Math.ceil(rw.expire));
    const entry = waiter?.entry ?? '';
    const woken = waiter?.woken === true;
    if (waiter) waiter.woken = false;
    const id = waiter ? (writerIds.get(waiter) ?? '') : '';
    const reply = await ACQUIRE_RW.run(
      redis(rw),
      [keys.readers, keys.writer, keys.waiting, keys.fencing, keys.readerQueue, keys.writerQueue],
      [side(rw), token, expire, entry, woken ? '1' : '', id, String(WRITER_WAIT_TTL)],
    );
    return outcomeOf(reply, id !== '');
  },
  async release(rw, token) {
    const { readers, writer, waiting, readerQueue, writerQueue } = keysOf(rw);
    const reply = await RELEASE_RW.run(
      redis(rw),
      [readers, writer, waiting, readerQueue, writerQueue],
      [side(rw), token],
    );
    return reply === 1;
  },
  async extend(rw, token, ttl) {
    const { readers, writer, waiting } = keysOf(rw);
    const args = [side(rw), token, String(Math.ceil(ttl))];
    return (await EXTEND_RW.run(redis(rw), [readers, writer, waiting], args)) === 1;
  },
  async state(rw) {
    const { readers, writer, waiting } = keysOf(rw);
    const [r, w, i] = (await STATE_RW.run(redis(rw), [readers, writer, waiting], [])) as number[];
    return { readers: Number(r), writer: Number(w) > 0, writerWaiting: Number(i) > 0 };
  },
  handOff,
};
