/**
 * The surface a backend author implements: a backend is one declared object, its primitives plus
 * its capabilities. The core owns everything else (options, validation, blocking, deadlines,
 * owner tokens, the wait session and its sleep policy, fencing bookkeeping, renewal and the loss
 * signal). Registered with `backends.register()`; see docs/extending.md, "Writing a backend".
 */
import type { ConnectionSettings } from './connection.js';

/** A client class a backend accepts (`client instanceof clientClass`). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- constructor parameters vary by library
export type ClientClass = abstract new (...args: any[]) => object;

/** What a backend's server can do with expiries, in milliseconds. */
export interface ExpiryLimits {
  /** The unit the server counts expiries in (1 ms for Redis; 1000 when it counts whole seconds). */
  readonly granularity: number;
  /** The shortest `expire` accepted; shorter ones are refused with a RangeError. */
  readonly minimum: number;
  /** The longest `expire` accepted, or `null` for no limit. */
  readonly maximum: number | null;
  /**
   * How much earlier than the TTL it was sent the server may free a lock (Memcached's clock
   * ticks once a second: 1000). The loss signal counts on that much less.
   */
  readonly earlyBy: number;
  /** Said in messages about the minimum, e.g. `', and the server raises them to its minimum TTL'`. */
  readonly note?: string;
  /** Said in messages about the maximum, e.g. `', which reads longer expirations as dates'`. */
  readonly maximumNote?: string;
}

/** What a backend declares it can do. The contract suite runs what a backend claims. */
export interface BackendCapabilities {
  /** `acquire` reports a fencing token, strictly increasing per lock name with every holding. */
  readonly fencing: boolean;
  /** `extend` is implemented: `lock.extend()` and `autoExtend` work. */
  readonly extend: boolean;
  /**
   * `'push'`: waiters are woken by the release (`handOff` is implemented); `'poll'`: waiters try
   * again every `retryInterval` (with jitter).
   */
  readonly handOff: 'push' | 'poll';
  /** Locks are shared by every process using the same server (false: in this process only). */
  readonly crossProcess: boolean;
  readonly expiry: ExpiryLimits;
  /**
   * `semaphore` is implemented: `new Semaphore()` and `manager.semaphore()` work (absent: false).
   * The other capabilities apply to its permits too: fencing tokens, extend, push hand-off.
   */
  readonly semaphore?: boolean;
  /**
   * `readWrite` is implemented: `new ReadWriteLock()` and `manager.readWrite()` work (absent:
   * false). The other capabilities apply to its read and write holdings too.
   */
  readonly readWrite?: boolean;
  /**
   * `election` is implemented: `new LeaderElection()` and `manager.election()` work (absent:
   * false). Needs `fencing` (the term) and `extend` (the leader renews its lease) too.
   */
  readonly election?: boolean;
}

/** The lock a primitive works on. */
export interface LockTarget<C extends object = object> {
  /** The name the lock was created with. */
  readonly name: string;
  /** The key on the server (namespace included), formatted by the backend's `formatKey`. */
  readonly key: string;
  /** The namespace the key was formatted with (`null`: none). */
  readonly namespace: string | null;
  /** How long the server should keep the lock, in ms (`null`: never expire). */
  readonly expire: number | null;
  /** The deadline of one round trip, in ms (a backend fanning out to several servers uses it). */
  readonly operationTimeout: number;
  /** The client to talk to the server with. */
  readonly client: C;
}

/** What a backend's `ping` may report beside "up": plain values, shown by health checks. */
export type PingDetails = Readonly<Record<string, string | number | boolean>>;

/**
 * What one attempt to take the lock found: facts, never durations to sleep.
 * - `true` / `{ granted: true }`: this owner token holds the lock now;
 * - `false` / `{ granted: false }`: someone else does.
 */
export type AttemptOutcome<H = unknown> =
  | boolean
  | {
      readonly granted: true;
      /** This holding's fencing token (a decimal string), when the backend issues them. */
      readonly fencingToken?: string;
      /**
       * When the lock's expiry started counting at the server (a `performance.now()` time), if
       * before the attempt was sent (a place in line renewed earlier): the loss signal counts
       * from it.
       */
      readonly since?: number;
      /** Whatever the backend needs to release or extend this holding; given back to them. */
      readonly held?: H;
      /**
       * The owner token that holds the lock, when it is not the attempt's own: a waiter granted
       * the lock by a release (direct hand-off) holds the token it queued with.
       */
      readonly ownerToken?: string;
    }
  | {
      readonly granted: false;
      /** The holder's remaining time to live in ms as the server said (-1: no expiry). */
      readonly holderTtl?: number;
      /** This waiter's place in line, 0 being next (waiters only). */
      readonly position?: number;
      /** In how many ms the waiter's place in line must be renewed by another attempt. */
      readonly renewWithin?: number;
      /**
       * The server keeps this waiter's place in line without its polls (until `renewWithin`,
       * when given) and grants a free lock to the first in line itself, so that only the first
       * in line polls often (for a lost grant): see `sleepBeforeNextAttempt`.
       */
      readonly keptInLine?: boolean;
    };

/**
 * Server-pushed hand-off: a blocking acquire that finds the lock taken waits in line and is woken
 * by the release instead of polling. The core opens one waiter per blocking acquire, passes it to
 * every attempt of that acquire, and closes it when the acquire ends; the backend keeps whatever
 * it needs in the waiter object, never on the lock.
 */
export interface HandOff<
  C extends object = object,
  W = unknown,
  T extends LockTarget<C> = LockTarget<C>,
> {
  /**
   * A new waiter for one blocking acquire, before its first attempt: no I/O. `wake` is called
   * (by the backend) whenever the lock may have been freed: a release, an expiry, a reconnect.
   */
  open(lock: T, wake: () => void): W;
  /**
   * `true`: an attempt with a waiter just opened does exactly what an attempt without one does,
   * so the core opens the waiter only after the first attempt was refused (or failed): an
   * uncontended blocking acquire then makes no waiter at all. Default: opened before the first
   * attempt.
   */
  readonly openAfterRefusal?: boolean;
  /**
   * Whether a waiter opened now would listen without a round trip (the backend's notification
   * channel for this lock is subscribed already). `true`: the core opens the waiter and listens
   * before the acquire's first attempt, so that a refused first attempt already puts the waiter
   * in line (no window between a refusal and the waiter's place in line in which the lock can go
   * to a newcomer). Called once per blocking acquire: must be cheap and synchronous.
   */
  listensAlready?(lock: T): boolean;
  /**
   * Called after every failed attempt of a blocking acquire, before it waits: starts listening
   * if not yet. Resolves `true` when no release after that attempt can be missed (the waiter then
   * waits), `false` when the core should attempt once more at once (listening just started).
   * A rejection makes the acquire fall back to polling.
   */
  listen(lock: T, waiter: W): Promise<boolean>;
  /**
   * The acquire ended: stop listening, and if it was not granted, leave the line (passing on a
   * wake-up it may have taken). Must not throw; background work must not reject unhandled.
   */
  close(lock: T, waiter: W, granted: boolean): void;
  /**
   * Optional (direct grant): the grant a release pushed to this waiter (its message), taken once;
   * `undefined` when none arrived. The core calls it when `wake` is called while the acquire
   * sleeps in line: a grant resolves the acquire from the message, with no attempt (`close`
   * follows with `granted` true). A grant carries no `held`.
   */
  takeGrant?(lock: T, waiter: W): PushedGrant | undefined;
}

/** A grant pushed to a waiter by a release (`HandOff.takeGrant`). */
export interface PushedGrant {
  /** The owner token the waiter queued with: it holds the lock now. */
  readonly ownerToken: string;
  /** The holding's fencing token, when the backend issues them. */
  readonly fencingToken?: string | undefined;
  /**
   * When the message arrived (`performance.now()`): the grant was made before. A backend that
   * knows when the grant was made at the earliest (the server's time in the message) says that,
   * if earlier: a message that waited while this process was frozen is then seen as old.
   */
  readonly since: number;
}

/** The semaphore a primitive works on: a lock target and the limit of the acquire. */
export interface SemaphoreTarget<C extends object = object> extends LockTarget<C> {
  /**
   * How many permits may be held at once, a whole number >= 1. It belongs to each call, not to
   * the name: nothing is stored. An acquire is granted only while fewer than `limit` permits
   * are held (or, for a line of waiters, when fewer than `limit` are ahead of it).
   */
  readonly limit: number;
}

/**
 * A counting semaphore's primitives (`capabilities.semaphore`): each permit is a holding with
 * its own owner token, expiry, fencing token and `held`, exactly like a lock's, so the core runs
 * the same wait session, renewal and loss signal over them. Every primitive is one atomic server
 * operation; expired permits must be reclaimed by the server's logic (its clock), never by a
 * client's. A semaphore's keys must not collide with a lock's of the same name.
 */
export interface SemaphoreBackend<C extends object = object, H = unknown, W = unknown> {
  /**
   * Takes a permit for `token` if fewer than `sem.limit` are held (after dropping expired ones);
   * reports like a lock's `acquire` (`holderTtl`: when the first held permit expires).
   */
  acquire(sem: SemaphoreTarget<C>, token: string, waiter?: W): Promise<AttemptOutcome<H>>;
  /** Gives back the permit `token` holds, if it still holds one; resolves whether it did. */
  release(sem: SemaphoreTarget<C>, token: string, held: H | undefined): Promise<boolean>;
  /** How many permits are held now (expired ones not counted). */
  count(sem: SemaphoreTarget<C>): Promise<number>;
  /** Sets the expiry of `token`'s permit to `ttl` ms from now (required by `capabilities.extend`). */
  extend?(
    sem: SemaphoreTarget<C>,
    token: string,
    ttl: number,
    held: H | undefined,
  ): Promise<boolean>;
  /**
   * Wakes waiters when permits are freed, one waiter per freed permit (required by
   * `capabilities.handOff === 'push'`).
   */
  readonly handOff?: HandOff<C, W, SemaphoreTarget<C>>;
}

/** Which side of a read-write lock an acquire takes: shared (`read`) or exclusive (`write`). */
export type ReadWriteMode = 'read' | 'write';

/** The side of a read-write lock a primitive works on: a lock target and its mode. */
export interface ReadWriteTarget<C extends object = object> extends LockTarget<C> {
  readonly mode: ReadWriteMode;
}

/** What a read-write lock's server state is now (expired holdings not counted). */
export interface ReadWriteState {
  /** How many readers hold it. */
  readonly readers: number;
  /** Whether a writer holds it. */
  readonly writer: boolean;
  /** Whether a writer waits for it (new readers are then refused). */
  readonly writerWaiting: boolean;
}

/**
 * A read-write lock's primitives (`capabilities.readWrite`): many readers or one writer. Each
 * holding (a reader's or the writer's) has its own owner token, expiry, fencing token and
 * `held`, exactly like a lock's. A read is granted only while no writer holds **or waits**
 * (writers never starve); a write only while nobody holds. Every primitive is one atomic server
 * operation, expiries are the server's; its keys must not collide with a lock's or a
 * semaphore's of the same name.
 */
export interface ReadWriteBackend<C extends object = object, H = unknown, W = unknown> {
  /**
   * Takes `rw.mode` for `token` if allowed now; reports like a lock's `acquire`. A refused
   * blocking write attempt (with a `waiter`) must record that a writer waits, so that new reads
   * are refused until it is granted or gives up (or dies: the record must expire on its own).
   */
  acquire(rw: ReadWriteTarget<C>, token: string, waiter?: W): Promise<AttemptOutcome<H>>;
  /** Gives back `token`'s holding of `rw.mode`, if it still has one; resolves whether it did. */
  release(rw: ReadWriteTarget<C>, token: string, held: H | undefined): Promise<boolean>;
  /** The state now: readers, writer, a writer waiting. */
  state(rw: ReadWriteTarget<C>): Promise<ReadWriteState>;
  /** Sets the expiry of `token`'s holding to `ttl` ms from now (required by `capabilities.extend`). */
  extend?(
    rw: ReadWriteTarget<C>,
    token: string,
    ttl: number,
    held: H | undefined,
  ): Promise<boolean>;
  /** Wakes the waiters a release lets in (required by `capabilities.handOff === 'push'`). */
  readonly handOff?: HandOff<C, W, ReadWriteTarget<C>>;
}

/** What a backend reads of one lock at the server (`inspection.inspect`, `forceRelease`). */
export interface StoredLock {
  /** The stored owner value: the holder's owner token, which carries its metadata. */
  readonly owner: string;
  /** Time to live left in ms as the server said (-1: no expiry; absent: it cannot tell). */
  readonly ttl?: number;
  /** The holding's fencing token, when the server keeps one per holding. */
  readonly fencingToken?: string;
  /** How many acquires wait in line (absent: the backend keeps no line it can count). */
  readonly waiting?: number;
}

/** A held lock found by `inspection.list`: its name (namespace taken off) and what is stored. */
export interface ListedLock extends StoredLock {
  readonly name: string;
  readonly key: string;
}

/** Where `inspection.list` looks. */
export interface ListTarget<C extends object = object> {
  readonly client: C;
  /** The manager's namespace (`null`: none): only keys in it are listed. */
  readonly namespace: string | null;
  /** Only names starting with this (may be empty). */
  readonly prefix: string;
  /** Stop after this many held locks. */
  readonly limit: number;
}

/**
 * Inspection primitives (optional): read who holds a lock, list held locks, and delete a lock
 * whoever holds it. None may block the server (Redis: `SCAN` with `COUNT`, never `KEYS`).
 */
export interface InspectionBackend<C extends object = object> {
  /** The lock's holder as stored at the server, or `null` when nobody holds it. */
  inspect(lock: LockTarget<C>): Promise<StoredLock | null>;
  /** The held locks in the namespace whose names start with the prefix (absent: cannot list). */
  list?(target: ListTarget<C>): Promise<ListedLock[]>;
  /**
   * Deletes the lock whoever holds it and wakes the next waiter, in one atomic step where the
   * server allows; resolves what it deleted, or `null` when nobody held it.
   */
  forceRelease(lock: LockTarget<C>): Promise<StoredLock | null>;
}

/** What `ElectionBackend.leader` read: the holder of an election's lock, as it published itself. */
export interface LeaderRecord {
  /** The holder's fencing token (its term), or `null` if the backend could not read it. */
  readonly term: string | null;
  /** What the holder published with `proclaim`, or `null` while it has not published yet. */
  readonly value: string | null;
}

/**
 * Leader election's primitives (`capabilities.election`): the election is a lock (the backend's
 * own acquire, release, extend and hand-off) whose holder publishes a value with it. Both
 * primitives are one atomic server operation each.
 */
export interface ElectionBackend<C extends object = object, H = unknown> {
  /**
   * Publishes `value` (and `term`, the holding's fencing token) as the holder's, if and only if
   * `token` holds the lock now; what is published goes when the holding goes (release, expiry).
   * Resolves whether `token` held it.
   */
  proclaim(
    lock: LockTarget<C>,
    token: string,
    term: string,
    value: string,
    held: H | undefined,
  ): Promise<boolean>;
  /** The holder of the lock and what it published, or `null` when nobody holds it. */
  leader(lock: LockTarget<C>): Promise<LeaderRecord | null>;
  /**
   * Extends the lock and what its holder published together (default: the lock's `extend`, for
   * backends whose published value lives and dies with the holding on its own).
   */
  extend?(lock: LockTarget<C>, token: string, ttl: number, held: H | undefined): Promise<boolean>;
}

/**
 * A backend: the one thing a backend author writes. Every primitive is a single atomic server
 * operation (or a Lua script, a transaction) and throws when the server fails; the core bounds
 * each by `operationTimeout`, retries, and undoes an attempt that succeeded too late.
 *
 * @example
 * const kv: LockBackend<KvClient> = {
 *   name: 'kv',
 *   library: 'my-kv-client',
 *   clientClass: () => KvClient,
 *   capabilities: { fencing: false, extend: false, handOff: 'poll', crossProcess: true,
 *     expiry: { granularity: 1, minimum: 1, maximum: null, earlyBy: 0 } },
 *   connect: (connection) => new KvClient(connection ?? 'localhost:7000'),
 *   acquire: (lock, token) => lock.client.setIfAbsent(lock.key, token, lock.expire),
 *   release: (lock, token) => lock.client.deleteIfEquals(lock.key, token),
 *   locked: (lock) => lock.client.exists(lock.key),
 * };
 * backends.register(kv); // now configure({ backend: 'kv' }) and backends.KV work
 */
export interface LockBackend<C extends object = object, H = unknown, W = unknown> {
  /** The backend's name, as used in `configure({ backend })`; also `backends.<NAME>`. */
  readonly name: string;
  /** The npm package of the client library (for messages). */
  readonly library: string;
  readonly capabilities: BackendCapabilities;
  /**
   * The client class (or classes) a `client` must be an instance of. Called the first time they
   * are needed, so that it can load the driver then (drivers are optional dependencies).
   */
  clientClass(): ClientClass | readonly ClientClass[];
  /**
   * A new client from connection settings (a URL, a server list, driver options), or to the
   * default address when `undefined`. Throws a TypeError naming what is wrong in the settings.
   */
  connect(connection: ConnectionSettings | undefined): C;
  /** Closes a client this library created. Default: `quit()`, `close()` or `end()`. */
  close?(client: C): void | Promise<void>;
  /** Refuses a client whose settings would break the lock (throws a TypeError naming it). */
  checkClient?(client: C): void;
  /** The key of a lock on the server. Default: `namespace_name`, or `name` without namespace. */
  formatKey?(name: string, namespace: string | null): string;
  /** A rule `key` breaks on this server (the text of the error), or `undefined` if none. */
  checkKey?(key: string): string | undefined;

  /** Takes the lock for `token` if it is free. `waiter`: this acquire's place in line, if blocking. */
  acquire(lock: LockTarget<C>, token: string, waiter?: W): Promise<AttemptOutcome<H>>;
  /**
   * Deletes the lock if (and only if) `token` holds it; resolves whether it did. `held` is what
   * the granted attempt reported, or `undefined` when undoing an attempt whose outcome is unknown.
   */
  release(lock: LockTarget<C>, token: string, held: H | undefined): Promise<boolean>;
  /** Whether anyone holds the lock. */
  locked(lock: LockTarget<C>): Promise<boolean>;
  /**
   * One cheap round trip to the server (Redis `PING`, ...), for health checks: resolves when the
   * backend can serve locks (optionally with details, e.g. how many servers answered), throws an
   * Error saying why when it cannot (a Redlock quorum below its majority). `timeout`: the ms the
   * caller waits (a backend fanning out bounds each server's answer by it). Absent: health checks
   * ask `locked()` of a probe key instead.
   */
  ping?(client: C, timeout: number): Promise<PingDetails | void>;
  /** Sets the expiry of the lock to `ttl` ms from now if `token` holds it (`capabilities.extend`). */
  extend?(lock: LockTarget<C>, token: string, ttl: number, held: H | undefined): Promise<boolean>;
  /** Waking waiters on release (`capabilities.handOff === 'push'`). */
  readonly handOff?: HandOff<C, W>;
  /** A counting semaphore's primitives (`capabilities.semaphore`). */
  readonly semaphore?: SemaphoreBackend<C, H, W>;
  /** A read-write lock's primitives (`capabilities.readWrite`). */
  readonly readWrite?: ReadWriteBackend<C, H, W>;
  /** Inspection and force-release (`manager.inspect()`, `list()`, `forceRelease()`). */
  readonly inspection?: InspectionBackend<C>;
  /** Leader election's primitives (`capabilities.election`). */
  readonly election?: ElectionBackend<C, H>;
  /**
   * Why this backend cannot offer a feature it does not declare, said in the
   * `UnsupportedFeatureError` a user gets (e.g. `{ semaphore: 'it has no atomic ...' }`).
   */
  readonly unsupported?: {
    readonly semaphore?: string;
    readonly readWrite?: string;
    readonly inspection?: string;
    readonly list?: string;
    readonly election?: string;
  };
}

/** The core's view of an attempt's outcome (normalised from `AttemptOutcome`). */
export interface Granted<H = unknown> {
  readonly granted: true;
  readonly fencingToken: string | undefined;
  readonly since: number | undefined;
  readonly held: H | undefined;
  /** The owner token holding the lock, when not the attempt's own (see `AttemptOutcome`). */
  readonly ownerToken?: string | undefined;
}

export interface Refused {
  readonly granted: false;
  readonly holderTtl: number | undefined;
  readonly position: number | undefined;
  readonly renewWithin: number | undefined;
  readonly keptInLine?: boolean | undefined;
}

const REFUSED: Refused = Object.freeze({
  granted: false,
  holderTtl: undefined,
  position: undefined,
  renewWithin: undefined,
});
const GRANTED: Granted<never> = Object.freeze({
  granted: true,
  fencingToken: undefined,
  since: undefined,
  held: undefined,
});

/** Normalises what a backend's `acquire` resolved. */
export function outcomeOf<H>(outcome: AttemptOutcome<H>): Granted<H> | Refused {
  if (outcome === true) return GRANTED;
  if (outcome === false || typeof outcome !== 'object' || outcome === null) return REFUSED;
  if (outcome.granted) {
    const { fencingToken, since, held, ownerToken } = outcome;
    // No spread on the common path (once per acquire): a plain object literal.
    if (ownerToken === undefined) return { granted: true, fencingToken, since, held };
    return { granted: true, fencingToken, since, held, ownerToken };
  }
  return {
    granted: false,
    holderTtl: outcome.holderTtl,
    position: outcome.position,
    renewWithin: outcome.renewWithin,
    keptInLine: outcome.keptInLine,
  };
}
