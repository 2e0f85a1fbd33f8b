import { messages } from './messages.js';

/** Connection settings: a URL or server list, or options for the driver. */
export type ConnectionSettings = string | readonly string[] | Readonly<Record<string, unknown>>;

/** Connection settings taken apart: the servers they name, and the options for the driver. */
export interface ParsedConnection {
  /**
   * The servers (or URLs) named, in order: a string split at commas, an array, or the
   * `serversKey` entry of an options object (itself a string or an array). Trimmed, never empty
   * strings; empty when an options object names none.
   */
  readonly servers: readonly string[];
  /** An options object without its `serversKey` entry (empty for a string or an array). */
  readonly options: Readonly<Record<string, unknown>>;
}

const isServerList = (value: unknown): value is readonly string[] =>
  Array.isArray(value) &&
  value.length > 0 &&
  value.every((v) => typeof v === 'string' && v.trim().length > 0);

function split(value: string): string[] {
  return value
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0);
}

/**
 * The one parser of every backend's `connection` setting: a non-empty string (servers separated
 * by commas), an array of them, or a plain options object whose `serversKey` entry (when the
 * backend has one) lists servers the same way. Throws a TypeError naming the option, the value
 * and what `backend` accepts.
 */
export function parseConnection(
  backend: string,
  value: unknown,
  serversKey?: string,
): ParsedConnection {
  const allowed = `a URL or server list string, an array of them, or an options object for the ${backend} client`;
  if (typeof value === 'string') {
    const servers = split(value);
    if (servers.length > 0) return { servers, options: {} };
  } else if (isServerList(value)) {
    return { servers: value.map((s) => s.trim()), options: {} };
  } else if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const options = { ...(value as Record<string, unknown>) };
    if (serversKey === undefined || !(serversKey in options)) return { servers: [], options };
    const listed = options[serversKey];
    delete options[serversKey];
    const servers =
      typeof listed === 'string' ? split(listed) : isServerList(listed) ? [...listed] : [];
    if (servers.length === 0) {
      throw new TypeError(
        messages.invalidOption(
          `connection.${serversKey}`,
          listed,
          'a server list such as "host:port,host:port" or an array of them',
        ),
      );
    }
    return { servers: servers.map((s) => s.trim()), options };
  }
  throw new TypeError(messages.invalidOption('connection', value, allowed));
}
