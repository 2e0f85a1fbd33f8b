import { backends, type BackendDefinition, type ConnectionSettings } from '../sherlock.js';
import { backendOfClient } from '../core/registry.js';
import { messages } from '../core/messages.js';
import {
  checkConnection,
  checkDuration,
  checkKeys,
  LOCK_OPTION_KEYS,
  type LockOptions,
  validateLockOptions,
} from '../core/options.js';
import type {
  LockedDecoratorOptions,
  LockedOptions,
  OnBusy,
  SherlockModuleOptions,
} from './sherlock.interfaces.js';
import { nestMessages } from './sherlock.messages.js';

/** `LockedOptions` with every default applied except the lock options left to the service. */
export interface ResolvedLockedOptions extends LockOptions {
  readonly wait: boolean;
  readonly onBusy: OnBusy;
  readonly atLeastFor: number;
}

/** A registration's options after validation, as the LockService uses them. */
export interface ResolvedModuleOptions {
  readonly backend: BackendDefinition;
  readonly client?: object;
  readonly connection?: ConnectionSettings;
  readonly lockOptions: LockOptions;
  readonly locked: ResolvedLockedOptions;
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
const MODULE_KEYS = ['backend', 'client', 'connection', 'locked', ...LOCK_OPTION_KEYS] as const;

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

/** Validates the options of `@Locked()`. */
export function validateDecoratorOptions(options: unknown): LockedDecoratorOptions {
  const out: LockedDecoratorOptions = validateLockedOptions(options, '@Locked() options', [
    'service',
  ]);
  const service = (options as { service?: unknown }).service;
  if (service !== undefined) {
    if (typeof service !== 'string' || service.length === 0) {
      throw new TypeError(
        messages.invalidOption('service', service, 'the name of a SherlockModule registration'),
      );
    }
    out.service = service;
  }
  return out;
}

/** Checks that `atLeastFor` fits inside `expire` (a lock cannot outlive its expiry). */
export function checkAtLeastFor(atLeastFor: number, expire: number | null | undefined): void {
  if (expire !== null && expire !== undefined && atLeastFor > expire) {
    throw new RangeError(nestMessages.atLeastForAboveExpire(atLeastFor, expire));
  }
}

/**
 * Validates a registration's options at bootstrap: a bad option fails the application's start
 * with a TypeError / RangeError naming it.
 */
export function resolveModuleOptions(options: SherlockModuleOptions): ResolvedModuleOptions {
  const {
    backend: backendOption,
    client,
    connection,
    locked: lockedOption,
  }: SherlockModuleOptions = options;
  checkKeys(options, 'SherlockModule options', MODULE_KEYS);
  const lockOptions = validateLockOptions(options);
  if (client !== undefined && connection !== undefined) {
    throw new TypeError(nestMessages.clientAndConnection());
  }
  let backend: BackendDefinition;
  if (backendOption !== undefined) {
    backend = backends.get(backendOption);
  } else if (client !== undefined) {
    backend = backendOfClient(client);
  } else {
    throw new TypeError(
      messages.invalidOption(
        'backend',
        undefined,
        `one of ${backends
          .names()
          .map((n) => `'${n}'`)
          .join(', ')} (or give a client)`,
      ),
    );
  }
  if (client !== undefined) backend.checkClient(client);
  if (connection !== undefined) checkConnection(backend.name, connection);
  const given = validateLockedOptions(lockedOption ?? {}, "SherlockModule option 'locked'");
  const locked: ResolvedLockedOptions = {
    ...given,
    wait: given.wait ?? true,
    onBusy: given.onBusy ?? 'throw',
    atLeastFor: given.atLeastFor ?? 0,
  };
  checkAtLeastFor(
    locked.atLeastFor,
    locked.expire !== undefined ? locked.expire : lockOptions.expire,
  );
  // What only the backend can judge (its expiry limits, autoExtend against expire, whether it can
  // extend at all) fails the start too, not the first lock: build a lock with each setting.
  const { wait: _wait, onBusy: _onBusy, atLeastFor: _atLeastFor, ...lockedLockOptions } = locked;
  new backend.lockClass('options-check', lockOptions);
  new backend.lockClass('options-check', { ...lockOptions, ...lockedLockOptions });
  return {
    backend,
    lockOptions,
    locked,
    ...(client !== undefined ? { client } : {}),
    ...(connection !== undefined ? { connection } : {}),
  };
}
