/**
 * A fake `LockBackend` for the unit layer: an in-memory map driven by the (fake) clock, fully
 * controllable from tests. Every primitive call is counted and logged; a test can give a call
 * latency (the effect happens when the call is made, the answer comes `latency` ms later: a late
 * reply to a write the server applied), make the next calls throw, choose the facts a refusal
 * reports, script what `handOff.listen` does, and wake the waiters.
 *
 * Registration is process-global: each spec file registers its fakes under its own names.
 */
import '../../lib/core/base-lock.js'; // installs the lock-class maker a declared backend needs
import type {
  AttemptOutcome,
  BackendCapabilities,
  ExpiryLimits,
  LockBackend,
  LockTarget,
  PushedGrant,
} from '../../lib/core/backend.js';
import { backends, type BackendDefinition } from '../../lib/core/registry.js';

export type Primitive = 'acquire' | 'release' | 'locked' | 'extend' | 'listen';

/** The client the fake's locks are given (the fake keeps its state itself). */
export class FakeClient {
  closed = false;
}

/** What a granted attempt hands back to `release` / `extend`. */
export interface FakeHeld {
  readonly token: string;
  readonly grant: number;
}

/** One waiter opened by `handOff.open`. */
export interface FakeWaiter {
  readonly id: number;
  readonly key: string;
  readonly wake: () => void;
  listening: boolean;
  /** `undefined` while open; the flag `close` was called with afterwards. */
  closedWith: boolean | undefined;
  /** A grant pushed to it (`pushGrant`), not taken yet (`handOff.takeGrant`). */
  pushed?: PushedGrant | undefined;
}

/** What the next `listen` does: resolve true/false, reject, or never settle. */
export type ListenStep = boolean | Error | 'hang';

interface Entry {
  token: string;
  expiresAt: number | null;
}

interface Failure {
  readonly error: unknown;
  /** The call's effect happens before it throws (a dropped reply). */
  readonly applied: boolean;
  /** Only calls on this key fail. */
  readonly key: string | undefined;
}

/** A logged call: which primitive, when (fake `performance.now()`), and its arguments. */
export interface CallRecord {
  readonly primitive: Primitive | 'open' | 'close';
  readonly at: number;
  readonly key: string;
  readonly token?: string | undefined;
  readonly held?: FakeHeld | undefined;
  readonly ttl?: number | undefined;
  readonly waiter?: FakeWaiter | undefined;
  readonly granted?: boolean | undefined;
}

/** The facts a refused attempt reports (unset: none). */
export interface RefusalFacts {
  holderTtl?: number;
  position?: number;
  renewWithin?: number;
}

export interface FakeOptions {
  readonly name: string;
  readonly push?: boolean;
  /** The hand-off's `openAfterRefusal` (push backends). */
  readonly openAfterRefusal?: boolean;
  /** The hand-off implements `takeGrant` (a release may grant by message: `pushGrant`). */
  readonly takeGrant?: boolean;
  readonly extend?: boolean;
  readonly fencing?: boolean;
  readonly expiry?: Partial<ExpiryLimits>;
}

const DEFAULT_EXPIRY: ExpiryLimits = { granularity: 1, minimum: 1, maximum: null, earlyBy: 0 };

const now = (): number => performance.now();

const emptyCounts = (): Record<
  Primitive | 'open' | 'close' | 'connect' | 'closeClient',
  number
> => ({
  acquire: 0,
  release: 0,
  locked: 0,
  extend: 0,
  listen: 0,
  open: 0,
  close: 0,
  connect: 0,
  closeClient: 0,
});

/** The state and the knobs of one fake backend. */
export class FakeControl {
  readonly store = new Map<string, Entry>();
  /** How many times each primitive (and open/close/connect/close of a client) was called. */
  calls = emptyCounts();
  /** Every primitive call, in order. */
  log: CallRecord[] = [];
  /** Every waiter opened, in order. */
  waiters: FakeWaiter[] = [];
  /** Every client `connect` made, in order. */
  clients: FakeClient[] = [];
  /** How long each primitive takes to answer, in ms (default 0). */
  latency: Partial<Record<Primitive, number>> = {};
  /** What a refused attempt reports. */
  refusal: RefusalFacts = {};
  /** A refusal also reports the holder's real remaining TTL (-1: none), unless `refusal` sets one. */
  reportHolderTtl = false;
  /** `since` reported by a granted attempt (ms before the attempt was sent), if set. */
  sinceBefore: number | undefined;
  /** Whether a release (or `drop`) wakes the waiters on that key. */
  wakeOnRelease = true;
  /** `handOff.open` throws this, if set. */
  openError: unknown;
  /** Scripted `listen` outcomes, consumed in order; then `true`. */
  listenSteps: ListenStep[] = [];
  private failures: Record<Primitive, Failure[]> = {
    acquire: [],
    release: [],
    locked: [],
    extend: [],
    listen: [],
  };
  private delays: Record<Primitive, number[]> = {
    acquire: [],
    release: [],
    locked: [],
    extend: [],
    listen: [],
  };
  private fence = 0;
  private grants = 0;
  private waiterIds = 0;

  /** Forgets every lock, count, log and knob. */
  reset(): void {
    this.store.clear();
    this.calls = emptyCounts();
    this.log = [];
    this.waiters = [];
    this.clients = [];
    this.latency = {};
    this.refusal = {};
    this.reportHolderTtl = false;
    this.sinceBefore = undefined;
    this.wakeOnRelease = true;
    this.openError = undefined;
    this.listenSteps = [];
    for (const list of Object.values(this.failures)) list.length = 0;
    for (const list of Object.values(this.delays)) list.length = 0;
    this.fence = 0;
    this.grants = 0;
    this.waiterIds = 0;
  }

  /** The next `times` calls of `primitive` (on `key`, if given) throw `error`. */
  failNext(
    primitive: Primitive,
    times = 1,
    {
      error = new Error(`fake ${primitive} failure`),
      applied = false,
      key,
    }: { error?: unknown; applied?: boolean; key?: string } = {},
  ): void {
    for (let i = 0; i < times; i++) this.failures[primitive].push({ error, applied, key });
  }

  /** The next call of `primitive` answers after `ms` (overrides `latency` once). */
  delayNext(primitive: Primitive, ms: number): void {
    this.delays[primitive].push(ms);
  }

  /** Someone else holds `key` (for `ttl` ms, or forever). */
  holdElsewhere(key: string, ttl: number | null = null, token = 'someone-else'): void {
    this.store.set(key, { token, expiresAt: ttl === null ? null : now() + ttl });
  }

  /** The holder of `key` right now (expired entries are dropped), if any. */
  holder(key: string): string | undefined {
    return this.live(key)?.token;
  }

  /** Deletes `key` behind its holder's back, waking the waiters. */
  drop(key: string): void {
    this.store.delete(key);
    if (this.wakeOnRelease) this.wake(key);
  }

  /**
   * A release that grants `waiter` by message (direct grant): the lock is stored under the
   * waiter's own token `pushed-<id>` for `ttl` ms, and the waiter woken with the grant.
   * `since`: when the grant was made at the earliest, as the backend dates it (default: now).
   */
  pushGrant(
    waiter: FakeWaiter,
    fencingToken: string,
    ttl: number | null = null,
    since = now(),
  ): string {
    const token = `pushed-${waiter.id}`;
    this.store.set(waiter.key, { token, expiresAt: ttl === null ? null : now() + ttl });
    waiter.pushed = { ownerToken: token, fencingToken, since };
    waiter.wake();
    return token;
  }

  /** `handOff.takeGrant`: the grant pushed to `waiter`, once. */
  takeGrant(waiter: FakeWaiter): PushedGrant | undefined {
    const grant = waiter.pushed;
    waiter.pushed = undefined;
    return grant;
  }

  /** Wakes the open waiters (on `key`, if given); returns how many were woken. */
  wake(key?: string): number {
    let woken = 0;
    for (const waiter of this.waiters) {
      if (waiter.closedWith !== undefined || (key !== undefined && waiter.key !== key)) continue;
      waiter.wake();
      woken++;
    }
    return woken;
  }

  /** The waiters not closed yet. */
  openWaiters(): FakeWaiter[] {
    return this.waiters.filter((w) => w.closedWith === undefined);
  }

  /** The logged calls of one primitive. */
  callsOf(primitive: CallRecord['primitive']): CallRecord[] {
    return this.log.filter((c) => c.primitive === primitive);
  }

  /** The primitives called, in order (e.g. ['open', 'acquire', 'listen']). */
  sequence(): CallRecord['primitive'][] {
    return this.log.map((c) => c.primitive);
  }

  private live(key: string): Entry | undefined {
    const entry = this.store.get(key);
    if (entry && entry.expiresAt !== null && entry.expiresAt <= now()) {
      this.store.delete(key);
      return undefined;
    }
    return entry;
  }

  /**
   * Runs one call: counts and logs it, throws a scripted failure, applies `effect` now and
   * answers after the latency (the answer of a call that failed after its effect is the error).
   */
  async call<T>(primitive: Primitive, record: CallRecord, effect: () => T): Promise<T> {
    this.calls[primitive]++;
    this.log.push(record);
    const failures = this.failures[primitive];
    const index = failures.findIndex((f) => f.key === undefined || f.key === record.key);
    const failure = index >= 0 ? failures.splice(index, 1)[0] : undefined;
    const ms = this.delays[primitive].shift() ?? this.latency[primitive] ?? 0;
    if (failure && !failure.applied) {
      if (ms > 0) await pause(ms);
      throw failure.error;
    }
    const value = effect();
    if (ms > 0) await pause(ms);
    if (failure) throw failure.error;
    return value;
  }

  acquire(lock: LockTarget, token: string, waiter: FakeWaiter | undefined, fencing: boolean) {
    return this.call(
      'acquire',
      { primitive: 'acquire', at: now(), key: lock.key, token, waiter },
      () => {
        const entry = this.live(lock.key);
        if (entry) {
          const ttl = entry.expiresAt === null ? -1 : entry.expiresAt - now();
          const facts = this.reportHolderTtl ? { holderTtl: ttl, ...this.refusal } : this.refusal;
          return { granted: false, ...facts } as AttemptOutcome<FakeHeld>;
        }
        this.store.set(lock.key, {
          token,
          expiresAt: lock.expire === null ? null : now() + lock.expire,
        });
        const held: FakeHeld = { token, grant: ++this.grants };
        return {
          granted: true,
          held,
          ...(fencing ? { fencingToken: String(++this.fence) } : {}),
          ...(this.sinceBefore === undefined ? {} : { since: now() - this.sinceBefore }),
        } as AttemptOutcome<FakeHeld>;
      },
    );
  }

  release(lock: LockTarget, token: string, held: FakeHeld | undefined) {
    return this.call(
      'release',
      { primitive: 'release', at: now(), key: lock.key, token, held },
      () => {
        if (this.live(lock.key)?.token !== token) return false;
        this.store.delete(lock.key);
        if (this.wakeOnRelease) this.wake(lock.key);
        return true;
      },
    );
  }

  locked(lock: LockTarget) {
    return this.call('locked', { primitive: 'locked', at: now(), key: lock.key }, () =>
      Boolean(this.live(lock.key)),
    );
  }

  extend(lock: LockTarget, token: string, ttl: number, held: FakeHeld | undefined) {
    return this.call(
      'extend',
      { primitive: 'extend', at: now(), key: lock.key, token, ttl, held },
      () => {
        const entry = this.live(lock.key);
        if (entry?.token !== token) return false;
        entry.expiresAt = now() + ttl;
        return true;
      },
    );
  }

  open(lock: LockTarget, wake: () => void): FakeWaiter {
    this.calls.open++;
    if (this.openError !== undefined) throw this.openError;
    const waiter: FakeWaiter = {
      id: ++this.waiterIds,
      key: lock.key,
      wake,
      listening: false,
      closedWith: undefined,
    };
    this.waiters.push(waiter);
    this.log.push({ primitive: 'open', at: now(), key: lock.key, waiter });
    return waiter;
  }

  async listen(lock: LockTarget, waiter: FakeWaiter): Promise<boolean> {
    const step = this.listenSteps.shift() ?? true;
    await this.call('listen', { primitive: 'listen', at: now(), key: lock.key, waiter }, () => {
      waiter.listening = true;
    });
    if (step === 'hang') return new Promise<boolean>(() => undefined);
    if (step instanceof Error) throw step;
    return step;
  }

  close(lock: LockTarget, waiter: FakeWaiter, granted: boolean): void {
    this.calls.close++;
    this.log.push({ primitive: 'close', at: now(), key: lock.key, waiter, granted });
    waiter.closedWith = granted;
    waiter.listening = false;
  }
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A registered fake: its definition (for `new LockManager({ backend })`) and its control. */
export interface Fake {
  readonly control: FakeControl;
  readonly definition: BackendDefinition;
  readonly backend: LockBackend<FakeClient, FakeHeld, FakeWaiter>;
}

/**
 * Declares a fake backend and registers it with `backends.register()` under `options.name`
 * (unique per spec file). `push`: it implements hand-off; `extend`: it can extend.
 */
export function registerFake(options: FakeOptions): Fake {
  const { name, push = false, extend = true, fencing = false } = options;
  const control = new FakeControl();
  const capabilities: BackendCapabilities = {
    fencing,
    extend,
    handOff: push ? 'push' : 'poll',
    crossProcess: false,
    expiry: { ...DEFAULT_EXPIRY, ...options.expiry },
  };
  const backend: LockBackend<FakeClient, FakeHeld, FakeWaiter> = {
    name,
    library: `${name}-client`,
    capabilities,
    clientClass: () => FakeClient,
    connect: () => {
      control.calls.connect++;
      const client = new FakeClient();
      control.clients.push(client);
      return client;
    },
    close: (client) => {
      control.calls.closeClient++;
      client.closed = true;
    },
    acquire: (lock, token, waiter) => control.acquire(lock, token, waiter, fencing),
    release: (lock, token, held) => control.release(lock, token, held),
    locked: (lock) => control.locked(lock),
    ...(extend
      ? {
          extend: (lock: LockTarget, token: string, ttl: number, held: FakeHeld | undefined) =>
            control.extend(lock, token, ttl, held),
        }
      : {}),
    ...(push
      ? {
          handOff: {
            open: (lock: LockTarget, wake: () => void) => control.open(lock, wake),
            ...(options.openAfterRefusal ? { openAfterRefusal: true } : {}),
            listen: (lock: LockTarget, waiter: FakeWaiter) => control.listen(lock, waiter),
            close: (lock: LockTarget, waiter: FakeWaiter, granted: boolean) =>
              control.close(lock, waiter, granted),
            ...(options.takeGrant
              ? { takeGrant: (_lock: LockTarget, waiter: FakeWaiter) => control.takeGrant(waiter) }
              : {}),
          },
        }
      : {}),
  };
  const definition = backends.register(backend);
  return { control, definition, backend };
}
