/**
 * Inspection and force-release, the manager's side: `manager.inspect()`, `list()` and
 * `forceRelease()` run the backend's optional `inspection` primitives within the lock's
 * `operationTimeout` and turn what the server stores into a `LockInfo`.
 */
import type { InspectionBackend, LockTarget, StoredLock } from './backend.js';
import { DriverMissingError } from './errors/driver-missing.error.js';
import { LockBackendError } from './errors/lock-backend.error.js';
import { UnsupportedFeatureError } from './errors/unsupported-feature.error.js';
import { type LockHolder, parseOwner } from './holder.js';
import { messages } from './messages.js';
import type { BackendDefinition } from './registry.js';
import { DeadlineExceededError, settleWithin } from './timing.js';

export type { LockHolder } from './holder.js';

/** What `manager.inspect()` (and `list()`, `forceRelease()`) tells of one lock. */
export interface LockInfo {
  /** The lock's name (without namespace). */
  readonly name: string;
  /** Its key on the server (namespace included). */
  readonly key: string;
  /** The backend's name. */
  readonly backend: string;
  /** Whether someone holds it now. */
  readonly held: boolean;
  /** Who holds it (from the metadata in its owner token), or `null` when free. */
  readonly holder: LockHolder | null;
  /** Time to live left in ms: `-1` when it never expires, `null` when free or the server cannot tell. */
  readonly ttl: number | null;
  /** The holding's fencing token, or `null` when free or the server keeps none per holding. */
  readonly fencingToken: string | null;
  /** How many acquires wait in line, or `null` when the backend keeps no line it can count. */
  readonly waiting: number | null;
}

/** What `manager.list()` takes. */
export interface ListOptions {
  /** At most this many locks (default 1000, at most 100 000): the listing stops there. */
  limit?: number;
}

/** What `'forceReleased'` listeners get. */
export interface LockForceReleasedEvent {
  readonly name: string;
  readonly key: string;
  /** The holding that was deleted. */
  readonly removed: LockInfo;
}

/** The longest a `list()` may take: its scan makes many round trips. */
const listDeadline = (operationTimeout: number) => Math.max(operationTimeout * 10, 10_000);

/** The backend's inspection primitives, or an `UnsupportedFeatureError` saying why not. */
export function inspectionOf(backend: BackendDefinition, name: string): InspectionBackend {
  const inspection = backend.impl.inspection;
  if (inspection) return inspection;
  throw new UnsupportedFeatureError(
    name,
    backend.name,
    'inspection',
    backend.impl.unsupported?.inspection ??
      'it implements no inspection primitives (see docs/inspection.md)',
  );
}

/** Runs one inspection primitive within `deadline` ms, failures wrapped in `LockBackendError`. */
export async function bounded<T>(
  name: string,
  operation: 'inspect' | 'list' | 'forceRelease',
  deadline: number,
  run: () => Promise<T>,
): Promise<T> {
  let settled;
  try {
    settled = await settleWithin(Promise.resolve().then(run), deadline);
  } catch (err) {
    if (err instanceof DriverMissingError) throw err;
    throw new LockBackendError(name, operation, { cause: err });
  }
  if (settled.kind !== 'value') {
    throw new LockBackendError(name, operation, {
      cause: new DeadlineExceededError(operation, deadline),
    });
  }
  return settled.value;
}

/** A `LockInfo` from what the server stores (`null`: free). */
export function infoOf(
  name: string,
  key: string,
  backend: string,
  stored: StoredLock | null,
): LockInfo {
  if (stored === null) {
    return {
      name,
      key,
      backend,
      held: false,
      holder: null,
      ttl: null,
      fencingToken: null,
      waiting: null,
    };
  }
  return {
    name,
    key,
    backend,
    held: true,
    holder: parseOwner(stored.owner),
    ttl:
      stored.ttl === undefined ? null : stored.ttl < 0 ? -1 : Math.max(0, Math.round(stored.ttl)),
    fencingToken: stored.fencingToken ?? null,
    waiting: stored.waiting ?? null,
  };
}

/** `manager.inspect(name)` on a lock object made for it (not acquired). */
export async function inspectLock(backend: BackendDefinition, lock: LockTarget): Promise<LockInfo> {
  const inspection = inspectionOf(backend, lock.name);
  const stored = await bounded(lock.name, 'inspect', lock.operationTimeout, () =>
    inspection.inspect(lock),
  );
  return infoOf(lock.name, lock.key, backend.name, stored);
}

/** `manager.forceRelease(name)`: what was deleted, or `null` when nobody held the lock. */
export async function forceReleaseLock(
  backend: BackendDefinition,
  lock: LockTarget,
): Promise<LockInfo | null> {
  const inspection = inspectionOf(backend, lock.name);
  const removed = await bounded(lock.name, 'forceRelease', lock.operationTimeout, () =>
    inspection.forceRelease(lock),
  );
  return removed === null ? null : infoOf(lock.name, lock.key, backend.name, removed);
}

/** Checks `list()`'s arguments; resolves the limit. */
export function listArguments(prefix: unknown, options: unknown): number {
  if (typeof prefix !== 'string') {
    throw new TypeError(messages.invalidOption('prefix', prefix, 'a string (may be empty)'));
  }
  if (options === undefined) return 1000;
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(messages.invalidOption('list() options', options, 'an object { limit? }'));
  }
  const extra = Object.keys(options).filter((k) => k !== 'limit');
  if (extra.length > 0) {
    throw new TypeError(messages.invalidOption(extra[0] ?? '', '(given)', 'only limit'));
  }
  const { limit = 1000 } = options as ListOptions;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 100_000) {
    throw new RangeError(messages.invalidOption('limit', limit, 'a whole number from 1 to 100000'));
  }
  return limit;
}

/** `manager.list(prefix)`: the held locks of the namespace whose names start with `prefix`. */
export async function listLocks(
  backend: BackendDefinition,
  target: { client: object; namespace: string | null; operationTimeout: number },
  prefix: string,
  limit: number,
): Promise<LockInfo[]> {
  const inspection = inspectionOf(backend, prefix);
  const list = inspection.list;
  if (!list) {
    throw new UnsupportedFeatureError(
      prefix,
      backend.name,
      'listing',
      backend.impl.unsupported?.list ?? 'it implements no list primitive',
    );
  }
  const found = await bounded(prefix, 'list', listDeadline(target.operationTimeout), () =>
    list.call(inspection, {
      client: target.client,
      namespace: target.namespace,
      prefix,
      limit,
    }),
  );
  return found
    .slice(0, limit)
    .map((lock) => infoOf(lock.name, lock.key, backend.name, lock))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
