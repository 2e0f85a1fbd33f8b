/**
 * The lock table of the threads backend: fixed-size slots in a `SharedArrayBuffer`, changed only
 * with `Atomics`, so that every thread of a process holding the buffer sees the same locks.
 *
 * Layout (little-endian, 8-byte aligned): a 64-byte header (magic, slot count, the epoch of the
 * table's clock, the fencing counter), then `slots` slots of 1096 bytes:
 *
 * | bytes  | field                                                                                |
 * | ------ | ------------------------------------------------------------------------------------ |
 * | 0–7    | `word` (u64): the holding, `deadline << 24 \| generation` (deadline 0: free)         |
 * | 8–15   | `headSince` (u64): ms when the head of the line last changed or the lock was freed   |
 * | 16–19  | `state`: 0 empty; else the key's hash (low 2 bits cleared) \| 1 writing \| 2 ready |
 * | 20–23  | `keyLength`                                                                          |
 * | 24–27  | `seq`: bumped on every release, expiry eviction and turn of the line; waited on      |
 * | 28–35  | `head`, `tail`: the ticket line (FIFO)                                               |
 * | 36–67  | `ghosts`: 8 recently abandoned tickets (+1), skipped at once when they reach the head |
 * | 72–1095 | the key, UTF-8, at most 1024 bytes                                                 |
 *
 * The holding is ONE 64-bit word, so taking a free or expired lock, extending it and releasing
 * it are each a single `Atomics.compareExchange`: no thread ever holds an internal mutex, so a
 * thread terminated at any instruction leaves no slot stuck. Deadlines are whole milliseconds on
 * the table's clock (`process.hrtime`, monotonic and common to every thread of the process) since
 * the table's epoch; a holding ends by its release or by another thread taking it after its
 * deadline, and every later holding has a later deadline, so a stale holder's word never comes
 * back: its release or extend cannot touch another holding.
 */

const MAGIC = 0x534c4b31; // 'SLK1'
const HEADER_BYTES = 64;
/** The longest key (UTF-8 bytes) a slot stores. */
export const THREAD_KEY_BYTES = 1024;
const SLOT_FIXED = 72;
const STRIDE = SLOT_FIXED + THREAD_KEY_BYTES;
const GHOSTS = 8;
/** The largest number of slots a table may have. */
export const MAX_SLOTS = 1 << 20;
/** The default number of slots (distinct lock names) of a table. */
export const DEFAULT_SLOTS = 1024;

const GEN_BITS = 24n;
const GEN_MASK = (1n << GEN_BITS) - 1n;
/** The deadline of a lock that never expires (40 bits of ms: about 34 years). */
const NEVER = (1n << 40n) - 1n;
/** The longest `expire` the table stores, in ms (about 17 years: the rest is the table's age). */
export const MAX_EXPIRE = 2 ** 39;
/**
 * How long the head of the line may leave a free lock untaken before the next in line skips it
 * (a waiter in a thread that was terminated, or whose event loop is blocked): it then queues anew.
 */
export const STALL_MS = 1_000;

// Int32 indexes of a slot's fields, relative to the slot's Int32 base.
const STATE = 4;
const KEY_LENGTH = 5;
const SEQ = 6;
const HEAD = 7;
const TAIL = 8;
const GHOST = 9;

/** Options of a new `ThreadLockTable`. */
export interface ThreadLockTableOptions {
  /**
   * How many distinct lock names the table can hold over its lifetime (a name keeps its slot once
   * used). Default 1024; each slot takes 1096 bytes.
   */
  readonly slots?: number;
}

/** What `peek()` shows of a lock. */
export interface ThreadLockState {
  /** The holding's generation in its slot (stable across extends): which holding this is. */
  readonly holding: string;
  /** Remaining time to live in ms (-1: no expiry). */
  readonly ttl: number;
}

/** A holding: the slot and the word this holder wrote (changed by its extends). */
export interface ThreadHolding {
  readonly slot: number;
  word: bigint;
}

/** A place in a slot's line. */
export interface ThreadTicket {
  readonly slot: number;
  readonly ticket: number;
}

export type AttemptResult =
  | { readonly granted: true; readonly fencingToken: string; readonly held: ThreadHolding }
  | {
      readonly granted: false;
      readonly holderTtl?: number;
      readonly position?: number;
      readonly renewWithin?: number;
      /** The ticket was skipped (stalled at the head): queue again. */
      readonly requeue?: boolean;
    };

const encoder = new TextEncoder();

/** `Atomics.waitAsync` (Node 16+; typed here, as the ES2022 library predates it). */
const waitAsync = (
  Atomics as unknown as {
    waitAsync(
      array: Int32Array,
      index: number,
      value: number,
      timeout: number,
    ): { async: boolean; value: Promise<string> | string };
  }
).waitAsync;

/** FNV-1a, 32 bits. */
function hashOf(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (const byte of bytes) hash = Math.imul(hash ^ byte, 0x01000193);
  return hash | 0;
}

const deadlineOf = (word: bigint): bigint => word >> GEN_BITS;
const genOf = (word: bigint): bigint => word & GEN_MASK;
const pack = (deadline: bigint, gen: bigint): bigint => (deadline << GEN_BITS) | (gen & GEN_MASK);

/**
 * A table of locks shared by the worker threads of one process: the client of the `threads`
 * backend. Make it in one thread and hand `table.buffer` to the others (`workerData`,
 * `postMessage`), where `new ThreadLockTable(buffer)` opens the same table. Limits: `slots`
 * distinct lock names over the table's lifetime, keys of at most 1024 UTF-8 bytes (the limit of every backend).
 *
 * @example
 * const table = new ThreadLockTable();
 * new Worker(file, { workerData: { locks: table.buffer } });
 * // in the worker:
 * const locks = new LockManager({ backend: 'threads', client: new ThreadLockTable(workerData.locks) });
 */
export class ThreadLockTable {
  /** The shared memory of the table: hand it to other threads. */
  readonly buffer: SharedArrayBuffer;
  /** How many distinct lock names the table holds. */
  readonly slots: number;
  private readonly i32: Int32Array;
  private readonly u64: BigUint64Array;
  private readonly bytes: Uint8Array;
  private readonly epoch: bigint;

  constructor(source: SharedArrayBuffer | ThreadLockTableOptions = {}) {
    if (source instanceof SharedArrayBuffer) {
      const header = source.byteLength >= HEADER_BYTES ? new Int32Array(source, 0, 4) : undefined;
      const slots = header ? Atomics.load(header, 1) : 0;
      if (
        !header ||
        Atomics.load(header, 0) !== MAGIC ||
        source.byteLength !== HEADER_BYTES + slots * STRIDE
      ) {
        throw new TypeError(
          'Invalid ThreadLockTable buffer: expected the `buffer` of a ThreadLockTable',
        );
      }
      this.buffer = source;
      this.slots = slots;
    } else {
      const slots = source.slots ?? DEFAULT_SLOTS;
      if (!Number.isInteger(slots) || slots < 1 || slots > MAX_SLOTS) {
        throw new RangeError(
          `Invalid option 'slots': got ${String(slots)}, expected an integer from 1 to ${MAX_SLOTS}`,
        );
      }
      this.buffer = new SharedArrayBuffer(HEADER_BYTES + slots * STRIDE);
      this.slots = slots;
      const header = new Int32Array(this.buffer, 0, 4);
      header[1] = slots;
      new BigUint64Array(this.buffer, 8, 1)[0] = process.hrtime.bigint();
      Atomics.store(header, 0, MAGIC);
    }
    this.i32 = new Int32Array(this.buffer);
    this.u64 = new BigUint64Array(this.buffer);
    this.bytes = new Uint8Array(this.buffer);
    this.epoch = Atomics.load(this.u64, 1);
  }

  /** @internal whole milliseconds on the table's clock (monotonic, common to every thread), rounded down. */
  now(): bigint {
    return (process.hrtime.bigint() - this.epoch) / 1_000_000n;
  }

  /**
   * The deadline `ttl` ms from now, on whole ms rounded up: a lock is free once `now()` (rounded
   * down) reaches it, so it never lives less than `ttl`.
   */
  private deadlineIn(ttl: number): bigint {
    return (process.hrtime.bigint() - this.epoch + 999_999n) / 1_000_000n + BigInt(ttl);
  }

  /** The remaining time to live until `deadline`, in ms (rounded down). */
  private ttlUntil(deadline: bigint): number {
    if (deadline === NEVER) return -1;
    const left = deadline - (process.hrtime.bigint() - this.epoch + 999_999n) / 1_000_000n;
    return left > 0n ? Number(left) : 0;
  }

  private wordIndex = (slot: number) => (HEADER_BYTES + slot * STRIDE) / 8;
  private base = (slot: number) => (HEADER_BYTES + slot * STRIDE) / 4;

  /**
   * @internal the slot of `key`: found, or claimed when `register` (then -1 if the table is full); -1 when
   * absent, -2 while another thread is writing a key of the same hash (try again shortly).
   */
  slotOf(key: string, register: boolean): number {
    const encoded = encoder.encode(key);
    if (encoded.length > THREAD_KEY_BYTES) {
      throw new RangeError(
        `the key is ${encoded.length} bytes long; at most ${THREAD_KEY_BYTES} fit a slot`,
      );
    }
    const tag = hashOf(encoded) & ~3;
    const start = (tag >>> 2) % this.slots;
    for (let probe = 0; probe < this.slots; probe++) {
      const slot = (start + probe) % this.slots;
      const base = this.base(slot);
      let state = Atomics.load(this.i32, base + STATE);
      if (state === 0) {
        if (!register) return -1; // keys are never removed: the probe chain ends here
        state = Atomics.compareExchange(this.i32, base + STATE, 0, tag | 1);
        if (state === 0) {
          this.bytes.set(encoded, (base + SLOT_FIXED / 4) * 4);
          Atomics.store(this.i32, base + KEY_LENGTH, encoded.length);
          Atomics.store(this.u64, this.wordIndex(slot) + 1, this.now());
          Atomics.store(this.i32, base + STATE, tag | 2);
          return slot;
        }
      }
      if ((state & ~3) !== tag) continue;
      if ((state & 3) === 1) return -2;
      if (this.keyEquals(base, encoded)) return slot;
    }
    return -1;
  }

  private keyEquals(base: number, encoded: Uint8Array): boolean {
    if (Atomics.load(this.i32, base + KEY_LENGTH) !== encoded.length) return false;
    const offset = (base + SLOT_FIXED / 4) * 4;
    for (let i = 0; i < encoded.length; i++) {
      if (this.bytes[offset + i] !== encoded[i]) return false;
    }
    return true;
  }

  /** @internal the current value of the slot's change counter (what a waiter waits on). */
  seq(slot: number): number {
    return Atomics.load(this.i32, this.base(slot) + SEQ);
  }

  /** @internal waits (without blocking) until the slot changes from `seen`, or `ms` pass. */
  waitChange(slot: number, seen: number, ms: number): Promise<unknown> {
    const result = waitAsync(this.i32, this.base(slot) + SEQ, seen, ms);
    return Promise.resolve(result.value);
  }

  private changed(slot: number): void {
    const index = this.base(slot) + SEQ;
    Atomics.add(this.i32, index, 1);
    Atomics.notify(this.i32, index);
  }

  /**
   * Passes the turn on while the head of the line abandoned it, or left the lock untaken for
   * STALL_MS since it was freed at `freeAt` (a dead or blocked waiter; null: the lock is held).
   * Returns the head after skipping.
   */
  private passStalledTurns(slot: number, now: bigint, freeAt: bigint | null): number {
    const base = this.base(slot);
    for (;;) {
      const head = Atomics.load(this.i32, base + HEAD);
      if (head === Atomics.load(this.i32, base + TAIL)) return head;
      const ghost =
        Atomics.load(this.i32, base + GHOST + (head & (GHOSTS - 1))) === ((head + 1) | 0);
      const stalled = freeAt !== null && now >= this.turnSince(slot, freeAt) + BigInt(STALL_MS);
      if (!ghost && !stalled) return head;
      if (Atomics.compareExchange(this.i32, base + HEAD, head, (head + 1) | 0) === head) {
        Atomics.store(this.u64, this.wordIndex(slot) + 1, now);
        this.changed(slot);
      }
    }
  }

  /** Since when the head of the line has had its turn at a lock freed at `freeAt`. */
  private turnSince(slot: number, freeAt: bigint): bigint {
    const since = Atomics.load(this.u64, this.wordIndex(slot) + 1);
    return since > freeAt ? since : freeAt;
  }

  /** @internal takes a ticket: a place at the back of the slot's line. */
  enqueue(slot: number): ThreadTicket {
    const ticket = Atomics.add(this.i32, this.base(slot) + TAIL, 1);
    return { slot, ticket };
  }

  /** @internal leaves the line without the lock: the ticket is marked abandoned and skipped at the head. */
  abandon({ slot, ticket }: ThreadTicket): void {
    const base = this.base(slot);
    Atomics.store(this.i32, base + GHOST + (ticket & (GHOSTS - 1)), (ticket + 1) | 0);
    const before = Atomics.load(this.i32, base + HEAD);
    const head = this.passStalledTurns(slot, this.now(), null);
    if (head !== before) this.changed(slot);
  }

  /**
   * @internal one attempt to take the lock of `slot` for `expire` ms (null: no expiry). `ticket`: the
   * waiter's place in line; without one, the lock is taken only if nobody waits in line.
   */
  attempt(slot: number, expire: number | null, ticket: ThreadTicket | undefined): AttemptResult {
    const index = this.wordIndex(slot);
    const base = this.base(slot);
    const now = this.now();
    const word = Atomics.load(this.u64, index);
    const deadline = deadlineOf(word);
    const free = deadline <= now;
    const head = this.passStalledTurns(slot, now, free ? deadline : null);
    const ahead = ticket ? (ticket.ticket - head) | 0 : 0;
    if (ahead < 0) return { granted: false, requeue: true }; // skipped while stalled: queue again
    const position = ticket ? { position: ahead } : {};
    if (!free) {
      return {
        granted: false,
        holderTtl: this.ttlUntil(deadline),
        ...position,
      };
    }
    if (ahead > 0 || (!ticket && head !== Atomics.load(this.i32, base + TAIL))) {
      // Others are before this attempt in line: their turn, unless the head stalls.
      const turnEnds = this.turnSince(slot, deadline) + BigInt(STALL_MS);
      return { granted: false, ...position, renewWithin: Math.max(1, Number(turnEnds - now) + 1) };
    }
    const next = pack(expire === null ? NEVER : this.deadlineIn(expire), genOf(word) + 1n);
    if (Atomics.compareExchange(this.u64, index, word, next) !== word) {
      return { granted: false, renewWithin: 0 }; // another thread took it: look again
    }
    // The fencing token is drawn after the holding is in place and counts only if it still is:
    // a holder that lost the lock (expired) before drawing cannot get a token above the next one.
    const fencingToken = Atomics.add(this.u64, 2, 1n) + 1n;
    if (Atomics.load(this.u64, index) !== next) return { granted: false, renewWithin: 0 };
    if (ticket) {
      Atomics.compareExchange(this.i32, base + HEAD, ticket.ticket, (ticket.ticket + 1) | 0);
      Atomics.store(this.u64, index + 1, now);
      this.passStalledTurns(slot, now, null);
    }
    return { granted: true, fencingToken: fencingToken.toString(), held: { slot, word: next } };
  }

  /** @internal frees the lock if `held` is still its holding (and not expired). */
  release(held: ThreadHolding): boolean {
    const index = this.wordIndex(held.slot);
    const now = this.now();
    if (deadlineOf(held.word) <= now) return false; // expired: the lock was no longer held
    const free = pack(0n, genOf(held.word));
    if (Atomics.compareExchange(this.u64, index, held.word, free) !== held.word) return false;
    Atomics.store(this.u64, index + 1, now);
    this.changed(held.slot);
    return true;
  }

  /** @internal sets the deadline of `held` to `ttl` ms from now if it is still the (unexpired) holding. */
  extend(held: ThreadHolding, ttl: number): boolean {
    const index = this.wordIndex(held.slot);
    const now = this.now();
    if (deadlineOf(held.word) <= now) return false;
    const next = pack(this.deadlineIn(ttl), genOf(held.word));
    if (Atomics.compareExchange(this.u64, index, held.word, next) !== held.word) return false;
    held.word = next;
    return true;
  }

  /** Whether anyone holds the lock on `key`. */
  locked(key: string): boolean {
    return this.peek(key) !== undefined;
  }

  /** The holding of `key` right now, or undefined when free (for inspection and tests). */
  peek(key: string): ThreadLockState | undefined {
    const slot = this.slotOf(key, false);
    if (slot < 0) return undefined;
    const word = Atomics.load(this.u64, this.wordIndex(slot));
    const deadline = deadlineOf(word);
    const now = this.now();
    if (deadline <= now) return undefined;
    return { holding: genOf(word).toString(), ttl: this.ttlUntil(deadline) };
  }

  /**
   * Frees the lock on `key` whoever holds it, as an expiry would (an operator's tool, and the
   * tests'); resolves whether it was held. Its holder finds it gone at its next extend or release.
   */
  evict(key: string): boolean {
    const slot = this.slotOf(key, false);
    if (slot < 0) return false;
    const index = this.wordIndex(slot);
    for (;;) {
      const word = Atomics.load(this.u64, index);
      const now = this.now();
      if (deadlineOf(word) <= now) return false;
      // Freed "now": any later holding has a later deadline than this one's end.
      if (Atomics.compareExchange(this.u64, index, word, pack(0n, genOf(word))) === word) {
        Atomics.store(this.u64, index + 1, now);
        this.changed(slot);
        return true;
      }
    }
  }
}
