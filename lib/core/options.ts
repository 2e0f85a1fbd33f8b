import type { BackendCapabilities } from './backend.js';
import { messages } from './messages.js';

/**
 * Options every lock accepts, each overriding the value set with `configure()`.
 * All durations are milliseconds.
 */
export interface LockOptions {
  /**
   * Prefix of the lock's key: `namespace_name` on Redis and Memcached, `namespace/name` on Etcd.
   * `null` (the default) means no prefix.
   */
  namespace?: string | null;
  /**
   * How long the server keeps the lock before it frees it by itself, in ms. `null` means never
   * (the lock stays until released). Default 60 000.
   */
  expire?: number | null;
  /** How long a blocking `acquire()` keeps trying, in ms. Default 10 000. */
  timeout?: number;
  /** Pause between two attempts of a blocking `acquire()`, in ms. Default 100. */
  retryInterval?: number;
  /**
   * Deadline of one round trip to the server, in ms: a call that has not answered by then fails
   * with `LockBackendError` (or counts as a failed attempt in a blocking acquire). Default 5 000.
   */
  operationTimeout?: number;
  /**
   * Keep renewing the lock while it is held: `true` renews every `expire / 3` ms, a number is the
   * renewal interval in ms (at most `expire / 2`). Needs an `expire` and a backend with
   * `extend()`. Default `false`.
   */
  autoExtend?: boolean | number;
}

/** The options of a lock after defaults were applied. */
export interface ResolvedLockOptions {
  readonly namespace: string | null;
  readonly expire: number | null;
  readonly timeout: number;
  readonly retryInterval: number;
  readonly operationTimeout: number;
  readonly autoExtend: boolean | number;
}

/** Sherlock's defaults, in milliseconds. */
export const DEFAULT_LOCK_OPTIONS: ResolvedLockOptions = Object.freeze({
  namespace: null,
  expire: 60_000,
  timeout: 10_000,
  retryInterval: 100,
  operationTimeout: 5_000,
  autoExtend: false,
});

export const LOCK_OPTION_KEYS = [
  'namespace',
  'expire',
  'timeout',
  'retryInterval',
  'operationTimeout',
  'autoExtend',
] as const;

/** Largest duration accepted (about 285 000 years): beyond it timers and TTLs lose meaning. */
export const MAX_DURATION = Number.MAX_SAFE_INTEGER;

/** Checks a duration in ms; `min` is inclusive. Throws TypeError / RangeError naming the option. */
export function checkDuration(option: string, value: unknown, min: number): number {
  const allowed = `a finite number of milliseconds >= ${min}`;
  if (typeof value !== 'number')
    throw new TypeError(messages.invalidOption(option, value, allowed));
  if (!Number.isFinite(value) || value < min || value > MAX_DURATION) {
    throw new RangeError(messages.invalidOption(option, value, allowed));
  }
  return value;
}

/** Checks `expire`: a duration of at least 1 ms, or `null` for a lock that never expires. */
export function checkExpire(value: unknown, option = 'expire'): number | null {
  if (value === null) return null;
  const allowed = 'a finite number of milliseconds >= 1, or null for a lock that never expires';
  if (typeof value !== 'number')
    throw new TypeError(messages.invalidOption(option, value, allowed));
  if (!Number.isFinite(value) || value < 1 || value > MAX_DURATION) {
    throw new RangeError(messages.invalidOption(option, value, allowed));
  }
  return value;
}

// Control characters (C0, DEL, C1): never part of a name or namespace.
// eslint-disable-next-line no-control-regex
export const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/** Checks a namespace: `null` or a non-empty string without control characters. */
export function checkNamespace(value: unknown, option = 'namespace'): string | null {
  if (value === null) return null;
  const allowed = 'a non-empty string without control characters, or null for no namespace';
  if (typeof value !== 'string')
    throw new TypeError(messages.invalidOption(option, value, allowed));
  if (value.length === 0 || CONTROL_CHARS.test(value)) {
    throw new RangeError(messages.invalidOption(option, value, allowed));
  }
  return value;
}

/** Throws a TypeError when `options` is not a plain object or has a key outside `allowed`. */
export function checkKeys(
  options: unknown,
  where: string,
  allowed: readonly string[],
): asserts options is Record<string, unknown> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(messages.invalidOption(where, options, 'an object of options'));
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) throw new TypeError(messages.unknownOption(key, where, allowed));
  }
}

/** Validates the per-lock options present in `options` (undefined means "not given"). */
export function validateLockOptions(options: Record<string, unknown>): LockOptions {
  const out: LockOptions = {};
  if (options.namespace !== undefined) out.namespace = checkNamespace(options.namespace);
  if (options.expire !== undefined) out.expire = checkExpire(options.expire);
  if (options.timeout !== undefined) out.timeout = checkDuration('timeout', options.timeout, 0);
  if (options.retryInterval !== undefined) {
    out.retryInterval = checkDuration('retryInterval', options.retryInterval, 0);
  }
  if (options.operationTimeout !== undefined) {
    out.operationTimeout = checkDuration('operationTimeout', options.operationTimeout, 1);
  }
  if (options.autoExtend !== undefined) out.autoExtend = checkAutoExtend(options.autoExtend);
  return out;
}

/** Checks `autoExtend` on its own: a boolean, or a renewal interval of at least 1 ms. */
export function checkAutoExtend(value: unknown): boolean | number {
  if (typeof value === 'boolean') return value;
  return checkDuration('autoExtend', value, 1);
}

/**
 * The renewal interval of `autoExtend` for a lock expiring after `expire` ms, or `null` for no
 * renewal. Throws a RangeError for settings that cannot work: renewal without an expiry, or an
 * interval not well inside the expiry (more than half of it).
 */
export function renewalInterval(
  autoExtend: boolean | number,
  expire: number | null,
): number | null {
  if (autoExtend === false) return null;
  if (expire === null) {
    throw new RangeError(
      messages.invalidOption(
        'autoExtend',
        autoExtend,
        'false when expire is null (a lock that never expires needs no renewal)',
      ),
    );
  }
  if (autoExtend === true) return expire / 3;
  if (autoExtend > expire / 2) {
    throw new RangeError(
      messages.invalidOption(
        'autoExtend',
        autoExtend,
        `a renewal interval of at most expire / 2 (${expire / 2} ms) so that a renewal can fail and be retried before the lock expires`,
      ),
    );
  }
  return autoExtend;
}

/** A lock's settings after defaults and validation: what a lock (and a manager) runs with. */
export interface LockSettings extends ResolvedLockOptions {
  /** The renewal interval of `autoExtend` in ms, or `null` for no automatic renewal. */
  readonly renewEvery: number | null;
}

/** What settling options needs to know of a backend. */
export interface BackendTraits {
  readonly name: string;
  readonly capabilities: Pick<BackendCapabilities, 'extend' | 'expiry'>;
}

/**
 * Checks an expiry against what the backend can store: its minimum (a backend counting whole
 * seconds refuses less than one: such a lock would live longer than asked) and its maximum.
 */
export function checkExpiry(
  backend: BackendTraits,
  expire: number | null,
  option = 'expire',
): void {
  if (expire === null) return;
  const {
    minimum,
    maximum,
    granularity,
    note = '',
    maximumNote = '',
  } = backend.capabilities.expiry;
  if (expire < minimum) {
    throw new RangeError(
      messages.expireTooShort(option, backend.name, expire, minimum, granularity >= 1000, note),
    );
  }
  if (maximum !== null && expire > maximum) {
    throw new RangeError(
      messages.expireTooLong(option, backend.name, expire, maximum, maximumNote),
    );
  }
}

/**
 * The one place where lock settings are decided: the options given (validated already, see
 * `validateLockOptions`) over `defaults`, checked against the backend (its expiry limits, whether
 * it can extend for `autoExtend`) and against each other (`autoExtend` within `expire`).
 */
export function settle(
  given: LockOptions,
  defaults: ResolvedLockOptions,
  backend: BackendTraits,
): LockSettings {
  const settings = {
    namespace: given.namespace !== undefined ? given.namespace : defaults.namespace,
    expire: given.expire !== undefined ? given.expire : defaults.expire,
    timeout: given.timeout ?? defaults.timeout,
    retryInterval: given.retryInterval ?? defaults.retryInterval,
    operationTimeout: given.operationTimeout ?? defaults.operationTimeout,
    autoExtend: given.autoExtend ?? defaults.autoExtend,
  };
  checkExpiry(backend, settings.expire);
  const renewEvery = renewalInterval(settings.autoExtend, settings.expire);
  if (renewEvery !== null && !backend.capabilities.extend) {
    throw new RangeError(messages.autoExtendWithoutExtend(backend.name));
  }
  return { ...settings, renewEvery };
}
