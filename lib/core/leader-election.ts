import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { ElectionBackend, LeaderRecord, LockBackend, LockTarget } from './backend.js';
import { BaseLock, BOUND_PRIMITIVES, type BoundPrimitives } from './base-lock.js';
import { LockAbortedError } from './errors/lock-aborted.error.js';
import { LockBackendError } from './errors/lock-backend.error.js';
import { LockLostError } from './errors/lock-lost.error.js';
import { LockTimeoutError } from './errors/lock-timeout.error.js';
import { LockError } from './errors/lock.error.js';
import { UnsupportedFeatureError } from './errors/unsupported-feature.error.js';
import {
  BOUND_MANAGER,
  type BoundOptions,
  defaultManager,
  type LockManager,
  setElectionMaker,
} from './manager.js';
import { messages } from './messages.js';
import {
  checkDuration,
  checkKeys,
  checkNamespace,
  type LockOptions,
  validateLockOptions,
} from './options.js';
import type { BackendDefinition } from './registry.js';
import { DeadlineExceededError, now, settleWithin, sleep } from './timing.js';

/** A value a leader may publish with its metadata. */
export type LeaderMetadataValue = string | number | boolean | null;

/** What `new LeaderElection()` and `manager.election()` take. All durations are milliseconds. */
export interface LeaderElectionOptions {
  /** Prefix of the election's key, as for a lock. Default: the manager's. */
  namespace?: string | null;
  /**
   * The leader's lease: how long a leader that stopped renewing (a crash, a SIGKILL, a network
   * cut) keeps the leadership before another candidate takes over. Default 15 000.
   */
  expire?: number;
  /** How often the leader renews its lease: at most `expire / 2`. Default `expire / 3`. */
  renewEvery?: number;
  /** Pause between two attempts of a candidate, on backends that poll. Default: the manager's. */
  retryInterval?: number;
  /** Deadline of one round trip to the server. Default: the manager's. */
  operationTimeout?: number;
  /**
   * The id this candidate publishes when it leads (with its host and pid). Default: a random
   * UUID, new for each `LeaderElection` object.
   */
  id?: string;
  /** More that the leader publishes (`leader().metadata`): a flat object of plain values. */
  metadata?: Readonly<Record<string, LeaderMetadataValue>>;
  /** How often `observe()` and `'change'` listeners read who leads. Default 1 000 (at least 10). */
  observeInterval?: number;
}

/** Who leads an election, as the leader published it (`leader()`, `observe()`). */
export interface LeaderInfo {
  /**
   * The leader's term: its fencing token (a decimal string), strictly greater for each new
   * leadership of this election. Compare with `BigInt`.
   */
  readonly term: string;
  /** The id the leader published. `null` (as host and pid) only if it has not published yet. */
  readonly id: string | null;
  readonly host: string | null;
  readonly pid: number | null;
  readonly metadata: Readonly<Record<string, LeaderMetadataValue>>;
}

/** What `campaign()` resolves: this candidate leads. */
export interface Leadership {
  /** This leadership's term (fencing token): send it with every write the leader makes. */
  readonly term: string;
  /**
   * Aborts when this leadership ends: lost (reason: `LockLostError`, the lease could not be
   * renewed or was taken) or resigned (reason: a `LockError`).
   */
  readonly signal: AbortSignal;
  /** What this leader published. */
  readonly leader: LeaderInfo;
}

/** Emitted as `'lost'` when this candidate's leadership ends. */
export interface LeadershipEndedEvent {
  readonly term: string;
  /** `'resigned'`: `resign()` or `close()`; `'lost'`: the lease was lost (see `error`). */
  readonly reason: 'resigned' | 'lost';
  readonly error: LockError;
}

/** The events of a `LeaderElection`. */
export interface LeaderElectionEvents {
  /** This candidate became the leader. */
  elected: [leadership: Leadership];
  /** This candidate's leadership ended. */
  lost: [event: LeadershipEndedEvent];
  /**
   * Who leads changed (anyone: read every `observeInterval` ms while someone listens, and at
   * once on this candidate's own changes). `null`: nobody leads.
   */
  change: [leader: LeaderInfo | null];
  /** A background campaign (`start()`) met a server failure; it goes on trying. */
  error: [error: Error];
}

const ELECTION_KEYS = [
  'namespace',
  'expire',
  'renewEvery',
  'retryInterval',
  'operationTimeout',
  'id',
  'metadata',
  'observeInterval',
] as const;

/** The default lease of a leader, in ms. */
export const DEFAULT_LEADER_EXPIRE = 15_000;
/** How long one round of a campaign waits for the lock before it starts another. */
const CAMPAIGN_ROUND = 30_000;
/** How long `leader()` waits for a new leader to publish itself. */
const PUBLISH_WAIT = 25;

/** The key prefix that keeps an election's lock apart from a lock of the same name. */
export const ELECTION_PREFIX = 'election:';

/** The lock an election holds: a plain lock running the election's primitives. */
class ElectionLock extends BaseLock {}

/** Checks the election's options; throws a TypeError / RangeError naming the option. */
function checkElectionOptions(options: unknown): {
  lock: LockOptions;
  expire: number;
  renewEvery: number;
  id: string;
  metadata: Readonly<Record<string, LeaderMetadataValue>>;
  observeInterval: number;
} {
  checkKeys(options, 'LeaderElection options', ELECTION_KEYS);
  const { namespace, retryInterval, operationTimeout } = options;
  const lock = validateLockOptions({ retryInterval, operationTimeout });
  if (namespace !== undefined) lock.namespace = checkNamespace(namespace);
  const expire =
    options.expire === undefined
      ? DEFAULT_LEADER_EXPIRE
      : (() => {
          if (options.expire === null) {
            throw new TypeError(
              messages.invalidOption(
                'expire',
                null,
                'a finite number of milliseconds >= 1 (a leader needs a lease: without one, a dead leader would lead for ever)',
              ),
            );
          }
          return checkDuration('expire', options.expire, 1);
        })();
  const renewEvery =
    options.renewEvery === undefined
      ? expire / 3
      : checkDuration('renewEvery', options.renewEvery, 1);
  if (renewEvery > expire / 2) {
    throw new RangeError(
      messages.invalidOption(
        'renewEvery',
        renewEvery,
        `a renewal interval of at most expire / 2 (${expire / 2} ms, expire being ${expire} ms) so that a renewal can fail and be retried before the lease runs out`,
      ),
    );
  }
  const id = options.id === undefined ? randomUUID() : options.id;
  if (typeof id !== 'string' || id.length === 0 || id.length > 256) {
    throw new (typeof id === 'string' ? RangeError : TypeError)(
      messages.invalidOption('id', id, 'a non-empty string of at most 256 characters'),
    );
  }
  const metadata = options.metadata === undefined ? {} : options.metadata;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) {
    throw new TypeError(
      messages.invalidOption(
        'metadata',
        metadata,
        'a flat object of strings, numbers, booleans or null',
      ),
    );
  }
  for (const [key, value] of Object.entries(metadata)) {
    const plain =
      value === null ||
      typeof value === 'string' ||
      typeof value === 'boolean' ||
      (typeof value === 'number' && Number.isFinite(value));
    if (!plain) {
      throw new TypeError(
        messages.invalidOption(
          `metadata.${key}`,
          value,
          'a string, a finite number, a boolean or null',
        ),
      );
    }
  }
  const observeInterval =
    options.observeInterval === undefined
      ? 1_000
      : checkDuration('observeInterval', options.observeInterval, 10);
  return {
    lock,
    expire,
    renewEvery,
    id,
    metadata: Object.freeze({ ...(metadata as Record<string, LeaderMetadataValue>) }),
    observeInterval,
  };
}

/** The election primitives of `backend`, or the typed refusal saying why it has none. */
function electionOf(backend: BackendDefinition, name: string): ElectionBackend<object> {
  const { capabilities, impl } = backend;
  const election = capabilities.election === true ? impl.election : undefined;
  if (!election || !capabilities.fencing || !capabilities.extend) {
    const reason =
      impl.unsupported?.election ??
      (capabilities.fencing && capabilities.extend
        ? 'it implements no election primitives (see docs/extending.md)'
        : 'a leader needs fencing tokens (its term) and a lease it can renew (extend)');
    throw new UnsupportedFeatureError(name, backend.name, 'election', reason);
  }
  return election;
}

const adapters = new WeakMap<BackendDefinition, LockBackend<object, unknown, unknown>>();

/** The lock primitives an election runs: its backend's, with the election's `extend` if any. */
function electionPrimitives(
  backend: BackendDefinition,
  election: ElectionBackend<object>,
): LockBackend<object, unknown, unknown> {
  let adapter = adapters.get(backend);
  if (adapter) return adapter;
  const extend = election.extend;
  adapter = extend
    ? {
        ...backend.impl,
        extend: (lock: LockTarget, token: string, ttl: number, held: unknown) =>
          extend.call(election, lock, token, ttl, held),
      }
    : backend.impl;
  adapters.set(backend, adapter);
  return adapter;
}

interface Published {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly metadata: Readonly<Record<string, LeaderMetadataValue>>;
}

function parsePublished(value: string | null): Partial<Published> {
  if (value === null) return {};
  try {
    const parsed = JSON.parse(value) as Partial<Published>;
    return typeof parsed === 'object' && parsed !== null ? parsed : {};
  } catch {
    return {};
  }
}

function infoOf(record: LeaderRecord, term: string): LeaderInfo {
  const published = parsePublished(record.value);
  return Object.freeze({
    term,
    id: typeof published.id === 'string' ? published.id : null,
    host: typeof published.host === 'string' ? published.host : null,
    pid: typeof published.pid === 'number' ? published.pid : null,
    metadata: Object.freeze({ ...(published.metadata ?? {}) }),
  });
}

/**
 * Leader election: of every candidate campaigning for `name` (in every process using the same
 * server), one at a time leads. The leader holds a lock (its lease, `expire`) that it renews
 * every `renewEvery`, and publishes who it is with it (id, host, pid, metadata); its term is the
 * lock's fencing token, so it grows with each new leadership. A leader that dies leads until its
 * lease runs out; one that resigns hands over at once (the next candidate is woken by the
 * release). Built on the backend's mutex (Redis, Memory) or etcd's election recipe (etcd).
 * Backends without fencing and renewal refuse it with an `UnsupportedFeatureError`.
 *
 * @example
 * import { LockManager } from 'nestjs-sherlock';
 * const locks = new LockManager({ backend: 'redis' });
 * const election = locks.election('scheduler', { expire: 10_000 });
 * const { term, signal } = await election.campaign(); // resolves when this process leads
 * await runScheduler({ term, signal }); // stop when signal aborts: leadership lost
 * await election.resign(); // hand over at once
 */
export class LeaderElection {
  /** The election's name. */
  readonly name: string;
  /** This candidate's id, published when it leads. */
  readonly id: string;
  /** The leader's lease, in ms. */
  readonly expire: number;
  /** How often the leader renews its lease, in ms. */
  readonly renewEvery: number;
  /** How often `observe()` and `'change'` listeners read who leads, in ms. */
  readonly observeInterval: number;
  readonly manager: LockManager;
  private readonly metadata: Readonly<Record<string, LeaderMetadataValue>>;
  private readonly primitives: ElectionBackend<object>;
  private readonly lock: BaseLock;
  private readonly emitter = new EventEmitter();
  private current: { leadership: Leadership; end: AbortController } | null = null;
  private campaigning: AbortController | null = null;
  private background: AbortController | null = null;
  private closed = false;
  private changeLoop: AbortController | null = null;
  private readonly pokes = new Set<() => void>();

  constructor(name: string, options: LeaderElectionOptions = {}) {
    const checked = checkElectionOptions(options);
    const manager: LockManager = (options as BoundOptions)[BOUND_MANAGER] ?? defaultManager();
    const backend = manager.configuration.backend;
    if (!backend) {
      throw new LockError(messages.noBackendFor('election', String(name)), String(name));
    }
    if (typeof name !== 'string') {
      throw new TypeError(messages.invalidName(backend.name, name, 'expected a string'));
    }
    this.primitives = electionOf(backend, name);
    const bound: LockOptions & BoundOptions & BoundPrimitives = {
      ...checked.lock,
      expire: checked.expire,
      autoExtend: checked.renewEvery,
      timeout: CAMPAIGN_ROUND,
      [BOUND_MANAGER]: manager,
      [BOUND_PRIMITIVES]: { backend, primitives: electionPrimitives(backend, this.primitives) },
    };
    this.lock = new ElectionLock(`${ELECTION_PREFIX}${name}`, bound);
    this.name = name;
    this.manager = manager;
    this.id = checked.id;
    this.expire = checked.expire;
    this.renewEvery = checked.renewEvery;
    this.metadata = checked.metadata;
    this.observeInterval = checked.observeInterval;
    manager.onClose(this, () => this.close());
  }

  /** The key of the election's lock on the server (namespace included). */
  get key(): string {
    return this.lock.key;
  }

  /** Whether this candidate leads now (as far as it knows: its lease is renewed and not lost). */
  get isLeader(): boolean {
    return this.current !== null && !this.current.leadership.signal.aborted;
  }

  /** This candidate's leadership, while it leads (else `null`). */
  get leadership(): Leadership | null {
    return this.isLeader ? (this.current?.leadership ?? null) : null;
  }

  /** The term of this candidate's leadership while it leads (else `undefined`). */
  get term(): string | undefined {
    return this.leadership?.term;
  }

  /**
   * Resolves when this candidate leads (at once if it already does). Waits as long as it takes:
   * another leader's resignation wakes it at once, a dead leader is replaced when its lease runs
   * out; a server that cannot be reached is tried again (never reported as leading). Rejects
   * with `LockAbortedError` when `signal` aborts or `resign()` / `close()` is called meanwhile.
   * While a campaign is in progress (`start()`, another call), waits for that one.
   *
   * @example
   * const { term, signal } = await election.campaign({ signal: AbortSignal.timeout(60_000) });
   */
  async campaign(options: { signal?: AbortSignal } = {}): Promise<Leadership> {
    checkKeys(options, 'campaign() options', ['signal']);
    const { signal: given } = options;
    if (given !== undefined && !(given instanceof AbortSignal)) {
      throw new TypeError(messages.invalidOption('signal', given, 'an AbortSignal'));
    }
    if (this.closed) throw new LockError(messages.electionClosed(this.name), this.name);
    const held = this.leadership;
    if (held) return held;
    if (this.campaigning) return this.joinCampaign(this.campaigning, given);
    const stop = new AbortController();
    this.campaigning = stop;
    const signal = given ? AbortSignal.any([given, stop.signal]) : stop.signal;
    try {
      return await this.campaignUntilElected(signal);
    } finally {
      if (this.campaigning === stop) this.campaigning = null;
    }
  }

  /** Waits for the campaign in progress (a background one, or another caller's) to elect. */
  private joinCampaign(
    running: AbortController,
    given: AbortSignal | undefined,
  ): Promise<Leadership> {
    return new Promise<Leadership>((resolve, reject) => {
      const stop = given ? AbortSignal.any([given, running.signal]) : running.signal;
      const onElected = (leadership: Leadership) => {
        stop.removeEventListener('abort', onAbort);
        resolve(leadership);
      };
      const onAbort = () => {
        this.emitter.off('elected', onElected);
        reject(new LockAbortedError(this.name, { cause: stop.reason }));
      };
      if (stop.aborted) return onAbort();
      this.emitter.once('elected', onElected);
      stop.addEventListener('abort', onAbort, { once: true });
    });
  }

  private async campaignUntilElected(signal: AbortSignal): Promise<Leadership> {
    for (;;) {
      if (signal.aborted) throw new LockAbortedError(this.name, { cause: signal.reason });
      try {
        await this.lock.acquire({ timeout: CAMPAIGN_ROUND, signal });
      } catch (err) {
        if (err instanceof LockAbortedError) {
          throw new LockAbortedError(this.name, { cause: signal.reason });
        }
        if (err instanceof LockTimeoutError) {
          // One round over; a round that ended on a server failure is worth telling.
          if (err.cause !== undefined) this.report(err);
          continue;
        }
        if (err instanceof LockBackendError) {
          this.report(err);
          await sleep(Math.max(this.lock.retryInterval, 100), signal);
          continue;
        }
        throw err;
      }
      const leadership = await this.takeOffice(signal);
      if (leadership) return leadership;
    }
  }

  /** The lock was granted: publish who leads, and watch the lease. `null`: lost meanwhile. */
  private async takeOffice(signal: AbortSignal): Promise<Leadership | null> {
    const lock = this.lock;
    const term = lock.fencingToken;
    const token = this.ownerToken();
    if (term === undefined || token === undefined) {
      await lock.release().catch(() => undefined);
      return null;
    }
    const info: LeaderInfo = Object.freeze({
      term,
      id: this.id,
      host: hostname(),
      pid: process.pid,
      metadata: this.metadata,
    });
    const value = JSON.stringify({
      id: info.id,
      host: info.host,
      pid: info.pid,
      metadata: info.metadata,
    });
    let published = false;
    try {
      published = await this.bounded('acquire', () =>
        this.primitives.proclaim(lock, token, term, value, this.heldValue()),
      );
    } catch (err) {
      this.report(err as Error);
    }
    if (!published || signal.aborted || !lock.isAcquired || lock.signal.aborted) {
      await lock.release().catch(() => undefined);
      return null;
    }
    const end = new AbortController();
    const leadership: Leadership = Object.freeze({ term, signal: end.signal, leader: info });
    this.current = { leadership, end };
    const lockSignal = lock.signal;
    lockSignal.addEventListener(
      'abort',
      () => {
        const reason: unknown = lockSignal.reason;
        const error =
          reason instanceof LockError ? reason : new LockLostError(this.name, 'unconfirmed');
        this.endLeadership('lost', error);
      },
      { once: true },
    );
    this.emitter.emit('elected', leadership);
    this.poke();
    return leadership;
  }

  private endLeadership(reason: 'resigned' | 'lost', error: LockError): void {
    const current = this.current;
    if (!current) return;
    this.current = null;
    current.end.abort(error);
    this.emitter.emit('lost', { term: current.leadership.term, reason, error });
    this.poke();
    // A background campaign (start()) goes on after a loss.
    if (reason === 'lost' && this.background && !this.background.signal.aborted) {
      void this.runBackground(this.background);
    }
  }

  /**
   * Campaigns in the background, and again after every loss of the leadership, until `resign()`
   * or `close()`: what a replica that should lead whenever it can does (the Nest module's
   * `campaign` option). Server failures are emitted as `'error'` events (if listened to).
   */
  start(): void {
    if (this.closed) throw new LockError(messages.electionClosed(this.name), this.name);
    if (this.background && !this.background.signal.aborted) return;
    const background = new AbortController();
    this.background = background;
    void this.runBackground(background);
  }

  /** Whether a background campaign (`start()`) is running. */
  get isCampaigning(): boolean {
    return (
      this.campaigning !== null || (this.background !== null && !this.background.signal.aborted)
    );
  }

  private async runBackground(background: AbortController): Promise<void> {
    for (;;) {
      if (background.signal.aborted || this.closed || this.isLeader) return;
      try {
        await this.campaign({ signal: background.signal });
        return;
      } catch (err) {
        if (background.signal.aborted || this.closed) return;
        if (err instanceof LockError && this.campaigning !== null) return; // another campaign runs
        this.report(err as Error);
        await sleep(Math.max(this.lock.retryInterval, 100), background.signal);
      }
    }
  }

  /**
   * Ends this candidate's leadership, releasing the lease so that the next candidate is woken at
   * once; stops a campaign in progress (it rejects with `LockAbortedError`) and a background one.
   * Resolves whether this candidate was leading. The election object can campaign again.
   */
  async resign(): Promise<boolean> {
    this.background?.abort();
    this.background = null;
    this.campaigning?.abort(new LockError(messages.resigned(this.name), this.name));
    const current = this.current;
    if (!current) return false;
    let released = true;
    try {
      await this.lock.release();
    } catch {
      // Not held any more (lost meanwhile) or the server failed: it expires on its own.
      released = false;
      this.lock.abandon();
    }
    this.endLeadership('resigned', new LockError(messages.resigned(this.name), this.name));
    return released;
  }

  /** Resigns and stops observing; the object campaigns no more. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.resign();
    this.closed = true;
    this.manager.offClose(this);
    this.changeLoop?.abort();
    this.changeLoop = null;
    for (const poke of this.pokes) poke();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /**
   * Who leads now, as the leader published it, or `null` when nobody does. Asks the server.
   * Rejects with `LockBackendError` if the server fails.
   *
   * @example
   * const leader = await election.leader();
   * console.log(leader ? `${leader.host}:${leader.pid} leads (term ${leader.term})` : 'no leader');
   */
  async leader(): Promise<LeaderInfo | null> {
    const started = now();
    for (;;) {
      const record = await this.bounded('locked', () => this.primitives.leader(this.lock));
      if (record === null) return null;
      const publishing = record.value === null || record.term === null;
      if (!publishing || now() - started > this.lock.operationTimeout) {
        return infoOf(record, record.term ?? '');
      }
      // A new leader between its election and publishing itself (one round trip): wait for it.
      await sleep(PUBLISH_WAIT);
    }
  }

  /**
   * Who leads, and every change of it: yields the current leader (or `null`) at once, then
   * each new one (a new term) or `null` when nobody leads, read every `observeInterval` ms and at
   * once on this candidate's own changes. Ends when `signal` aborts, the loop is left, or the
   * election is closed. A read that fails is tried again at the next interval.
   *
   * @example
   * for await (const leader of election.observe({ signal })) {
   *   console.log(leader ? `leader: ${leader.id} (term ${leader.term})` : 'no leader');
   * }
   */
  async *observe(options: { signal?: AbortSignal } = {}): AsyncGenerator<LeaderInfo | null> {
    checkKeys(options, 'observe() options', ['signal']);
    const { signal } = options;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      throw new TypeError(messages.invalidOption('signal', signal, 'an AbortSignal'));
    }
    let last: string | undefined; // the term last yielded ('' for nobody)
    let wake: AbortController = new AbortController();
    const poke = () => wake.abort();
    this.pokes.add(poke);
    signal?.addEventListener('abort', poke, { once: true });
    try {
      while (!this.closed && !signal?.aborted) {
        wake = new AbortController();
        let leader: LeaderInfo | null | undefined;
        try {
          leader = await this.leader();
        } catch {
          leader = undefined; // the server failed: keep the last answer, try again later
        }
        if (leader !== undefined) {
          const term = leader?.term ?? '';
          if (term !== last) {
            last = term;
            yield leader;
          }
        }
        if (this.closed || signal?.aborted) return;
        await sleep(this.observeInterval, wake.signal);
      }
    } finally {
      this.pokes.delete(poke);
      signal?.removeEventListener('abort', poke);
    }
  }

  /**
   * Listens for this election's events: `'elected'` and `'lost'` (this candidate), `'change'`
   * (who leads, anyone: observed while listened to), `'error'` (a background campaign's server
   * failure).
   */
  on<E extends keyof LeaderElectionEvents>(
    event: E,
    listener: (...args: LeaderElectionEvents[E]) => void,
  ): this {
    this.emitter.on(event, listener as (...args: unknown[]) => void);
    if (event === 'change') this.watchChanges();
    return this;
  }

  once<E extends keyof LeaderElectionEvents>(
    event: E,
    listener: (...args: LeaderElectionEvents[E]) => void,
  ): this {
    this.emitter.once(event, listener as (...args: unknown[]) => void);
    if (event === 'change') this.watchChanges();
    return this;
  }

  off<E extends keyof LeaderElectionEvents>(
    event: E,
    listener: (...args: LeaderElectionEvents[E]) => void,
  ): this {
    this.emitter.off(event, listener as (...args: unknown[]) => void);
    if (event === 'change' && this.emitter.listenerCount('change') === 0) {
      this.changeLoop?.abort();
      this.changeLoop = null;
    }
    return this;
  }

  /** Runs `observe()` for the `'change'` listeners while there are any. */
  private watchChanges(): void {
    if (this.changeLoop || this.closed) return;
    const loop = new AbortController();
    this.changeLoop = loop;
    void (async () => {
      for await (const leader of this.observe({ signal: loop.signal })) {
        if (this.emitter.listenerCount('change') === 0) break;
        this.emitter.emit('change', leader);
      }
    })().finally(() => {
      if (this.changeLoop === loop) this.changeLoop = null;
    });
  }

  private poke(): void {
    for (const poke of this.pokes) poke();
  }

  private report(error: Error): void {
    if (this.emitter.listenerCount('error') > 0) this.emitter.emit('error', error);
  }

  /** The owner token and `held` of the lock's holding. */
  private ownerToken(): string | undefined {
    return this.lock.holding?.token;
  }

  private heldValue(): unknown {
    return this.lock.holding?.held;
  }

  private async bounded<T>(operation: 'acquire' | 'locked', run: () => Promise<T>): Promise<T> {
    const timeout = this.lock.operationTimeout;
    let settled;
    try {
      settled = await settleWithin(Promise.resolve().then(run), timeout);
    } catch (err) {
      throw new LockBackendError(this.name, operation, { cause: err });
    }
    if (settled.kind !== 'value') {
      const cause = new DeadlineExceededError(operation, timeout);
      throw new LockBackendError(this.name, operation, { cause });
    }
    return settled.value;
  }
}

setElectionMaker((name, options) => new LeaderElection(name, options));
