import { hostname } from 'node:os';
import { newOwnerToken } from './timing.js';

/**
 * Holder metadata, carried in the owner token itself so that no backend needs an extra round trip
 * or a format of its own: every backend stores the owner token as the lock's value (or in its
 * entry's key), and compares it whole on release and extend, so the metadata rides along for free.
 *
 * Format: `<32 hex random>|<acquired at, Unix ms>|<pid>|<host>|<application>`, host and
 * application percent-encoded (so `|` never appears in them). The random part alone is the
 * secret: the rest is what `inspect()` shows. A value without `|` (written by an older version)
 * is still a valid owner token: it just has no metadata.
 */

/** Who holds a lock, as its owner token tells. */
export interface LockHolder {
  /** The host name of the holder's machine (`os.hostname()`), or `null` when not recorded. */
  readonly host: string | null;
  /** The holder's process id, or `null` when not recorded. */
  readonly pid: number | null;
  /** The application name set on the holder's manager (`appName`), or `null`. */
  readonly app: string | null;
  /** When the holder's attempt that took the lock was made (its clock), or `null`. */
  readonly acquiredAt: Date | null;
  /** The first 8 characters of the random owner token: tells two holdings apart, safe to show. */
  readonly id: string;
}

const APP_NAME_MAX = 64;

/** Why `appName` is not acceptable, or `undefined` when it is. */
export function appNameProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'a string';
  if (value.length === 0 || value.length > APP_NAME_MAX) {
    return `a non-empty string of at most ${APP_NAME_MAX} characters`;
  }
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  if (/[\u0000-\u001f\u007f]/u.test(value)) return 'a string without control characters';
  return undefined;
}

/** The part of every owner token of one manager after the time: `|pid|host|app`. */
export function ownerSuffix(app: string | null): string {
  return `|${process.pid}|${encodeURIComponent(hostname())}|${app === null ? '' : encodeURIComponent(app)}`;
}

/** A new owner token carrying `suffix` (from `ownerSuffix`) and the time now. */
export function ownerToken(suffix: string | undefined): string {
  const random = newOwnerToken();
  return suffix === undefined ? random : `${random}|${Date.now()}${suffix}`;
}

function decode(part: string | undefined): string | null {
  if (part === undefined || part === '') return null;
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

/** What an owner token (a stored lock value) tells of its holder. */
export function parseOwner(owner: string): LockHolder {
  const [random = '', at, pid, host, app] = owner.split('|');
  const time = at === undefined ? NaN : Number(at);
  const process = pid === undefined || pid === '' ? NaN : Number(pid);
  return {
    host: decode(host),
    pid: Number.isSafeInteger(process) ? process : null,
    app: decode(app),
    acquiredAt: Number.isFinite(time) && time > 0 ? new Date(time) : null,
    id: random.slice(0, 8),
  };
}
