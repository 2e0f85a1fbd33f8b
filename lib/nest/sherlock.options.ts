import { LockManager } from '../core/manager.js';
import { checkLimit } from '../core/semaphore.js';
import { messages } from '../core/messages.js';
import {
  checkDuration,
  checkKeys,
  LOCK_OPTION_KEYS,
  type LockOptions,
  validateLockOptions,
} from '../core/options.js';
import type {
  LockedDecoratorOptions,
  LockedOptions,
  LockedPrimitiveOptions,
  OnBusy,
  SherlockModuleOptions,
} from './sherlock.interfaces.js';
import { nestMessages } from './sherlock.messages.js';
import { resolveErrorMapping } from './lock-error-mapping.js';

/** `LockedOptions` with every default applied except the lock options left to the service. */
export interface ResolvedLockedOptions extends LockOptions {
  readonly wait: boolean;
  readonly onBusy: OnBusy;
  readonly atLeastFor: number;
}

const LOCKED_KEYS = [
  'expire',
  'timeout',
  'retryInterval',
  'autoExtend',
  'wait',
  'onBusy',
  'atLeastFor',
] as const;
const MODULE_KEYS = [
  'backend',
  'client',
  'connection',
  'locked',
  'errorMapping',
  'appName',
  ...LOCK_OPTION_KEYS,
] as const;

/** Validates `LockedOptions` (`where` names them in messages); only the keys given are returned. */
export function validateLockedOptions(
  options: unknown,
  where: string,
  extraKeys: readonly string[] = [],
): LockedOptions {
  checkKeys(options, where, [...LOCKED_KEYS, ...extraKeys]);
  const out: LockedOptions = validateLockOptions(options);
  if (options.wait !== undefined) {
    if (typeof options.wait !== 'boolean') {
      throw new TypeError(messages.invalidOption('wait', options.wait, 'true or false'));
    }
    out.wait = options.wait;
  }
  if (options.onBusy !== undefined) {
    if (options.onBusy !== 'throw' && options.onBusy !== 'skip') {
      throw new TypeError(messages.invalidOption('onBusy', options.onBusy, "'throw' or 'skip'"));
    }
    out.onBusy = options.onBusy;
  }
  if (options.atLeastFor !== undefined)
    out.atLeastFor = checkDuration('atLeastFor', options.atLeastFor, 0);
  return out;
}

/** The keys of `LockedPrimitiveOptions` (`@Locked()` and `run()` take them). */
export const PRIMITIVE_KEYS = ['limit', 'mode'] as const;

/**
 * Validates `limit` / `mode` (of `@Locked()` or `run()`): a whole number >= 1, `'read'` or
 * `'write'`, never both. Only the keys given are returned.
 */
export function validatePrimitiveOptions(options: unknown): LockedPrimitiveOptions {
  const given = (options ?? {}) as { limit?: unknown; mode?: unknown };
  const out: LockedPrimitiveOptions = {};
  if (given.limit !== undefined) out.limit = checkLimit(given.limit);
  if (given.mode !== undefined) {
    if (given.mode !== 'read' && given.mode !== 'write') {
      throw new TypeError(messages.invalidOption('mode', given.mode, "'read' or 'write'"));
    }
    out.mode = given.mode;
  }
  if (out.limit !== undefined && out.mode !== undefined) {
    throw new TypeError(nestMessages.limitAndMode(out.limit, out.mode));
  }
  return out;
}

/** Refuses `limit` / `mode` with several names (`where` says where the names came from). */
export function checkPrimitiveWithNames(options: LockedPrimitiveOptions, where: string): void {
  if (options.limit !== undefined) {
    throw new TypeError(nestMessages.primitiveWithNames('limit', options.limit, where));
  }
  if (options.mode !== undefined) {
    throw new TypeError(nestMessages.primitiveWithNames('mode', options.mode, where));
  }
}

/**
 * Validates the options of `@Locked()`: `LockedOptions` and `name`, the registration (or
 * `service`, its name before 1.0).
 */
export function validateDecoratorOptions(options: unknown): LockedDecoratorOptions {
  const out: LockedDecoratorOptions = {
    ...validateLockedOptions(options, '@Locked() options', ['name', 'service', ...PRIMITIVE_KEYS]),
    ...validatePrimitiveOptions(options),
  };
  const given = options as { name?: unknown; service?: unknown };
  for (const option of ['name', 'service'] as const) {
    const value = given[option];
    if (value === undefined) continue;
    if (typeof value !== 'string' || value.length === 0) {
      throw new TypeError(
        messages.invalidOption(option, value, 'the name of a SherlockModule registration'),
      );
    }
  }
  if (given.name !== undefined && given.service !== undefined && given.name !== given.service) {
    throw new TypeError(nestMessages.nameAndService(given.name as string, given.service as string));
  }
  const registration = (given.name ?? given.service) as string | undefined;
  if (registration !== undefined) out.name = registration;
  return out;
}

/** Checks that `atLeastFor` fits inside `expire` (a lock cannot outlive its expiry). */
export function checkAtLeastFor(atLeastFor: number, expire: number | null | undefined): void {
  if (expire !== null && expire !== undefined && atLeastFor > expire) {
    throw new RangeError(nestMessages.atLeastForAboveExpire(atLeastFor, expire));
  }
}

/** What a registration runs with: its manager, and the defaults of `@Locked` and `run()`. */
export interface Registration {
  readonly manager: LockManager;
  readonly locked: ResolvedLockedOptions;
}

/**
 * Validates a registration's options at bootstrap and builds its manager: a bad option fails the
 * application's start with a TypeError / RangeError naming it. Nothing comes from `configure()`.
 */
export function createRegistration(options: SherlockModuleOptions): Registration {
  checkKeys(options, 'SherlockModule options', MODULE_KEYS);
  const { locked: lockedOption, errorMapping, ...managerOptions } = options;
  resolveErrorMapping(errorMapping);
  if (managerOptions.client !== undefined && managerOptions.connection !== undefined) {
    throw new TypeError(nestMessages.clientAndConnection());
  }
  const given = validateLockedOptions(lockedOption ?? {}, "SherlockModule option 'locked'");
  if (given.onBusy === 'skip') throw new TypeError(nestMessages.moduleSkip());
  const locked: ResolvedLockedOptions = {
    ...given,
    wait: given.wait ?? true,
    onBusy: given.onBusy ?? 'throw',
    atLeastFor: given.atLeastFor ?? 0,
  };
  const manager = new LockManager(managerOptions);
  try {
    // What only the backend can judge (its expiry limits, autoExtend against expire, whether it
    // can extend at all) fails the start too, not the first lock.
    const { wait: _wait, onBusy: _onBusy, atLeastFor, ...lockedLockOptions } = locked;
    const settings = manager.settle(lockedLockOptions, manager.backend);
    checkAtLeastFor(atLeastFor, settings.expire);
  } catch (err) {
    void manager.close();
    throw err;
  }
  return { manager, locked };
}
