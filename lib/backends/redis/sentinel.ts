import { messages } from '../../core/messages.js';

/**
 * Redis Sentinel as a `connection` setting of the Redis backend, and the `waitForReplicas` option
 * (WAIT after every write that grants a lock). See docs/sentinel.md.
 */

/** One Sentinel's address. */
export interface SentinelAddress {
  readonly host: string;
  readonly port: number;
}

/**
 * `waitForReplicas`: before a lock is reported as acquired (or extended), the server must have
 * the write acknowledged by `replicas` replicas within `timeout` ms (Redis `WAIT`).
 */
export interface WaitForReplicas {
  /** How many replicas must acknowledge the write (an integer >= 1). */
  readonly replicas: number;
  /** How long the server waits for them, in ms (an integer >= 1; WAIT's 0 would block for ever). */
  readonly timeout: number;
}

/**
 * The URL form: `redis+sentinel://[[username]:password@]host:port[,host:port…]/masterName[/db]`
 * with optional query parameters `sentinelUsername`, `sentinelPassword`, `role` (only `master`),
 * `waitForReplicas` (a count) and `waitTimeout` (ms, default 100). The user info is the master's
 * (and replicas') credentials; the Sentinels' own are the query parameters, as in ioredis.
 */
export const SENTINEL_URL = /^redis\+sentinel:\/\//i;

/**
 * The reconnect delay of a Sentinel client made from `connection` (unless it sets its own
 * `retryStrategy`): 100 ms more per failed try, at most 1 s, instead of ioredis' doubling up to
 * 5 s, so that a client (and its pub/sub connection) finds the new master soon after a failover.
 */
export const FOLLOW_FAILOVER = {
  retryStrategy: (times: number): number => Math.min(times * 100, 1_000),
};

const ALLOWED_URL =
  'redis+sentinel://[[username]:password@]host:port[,host:port…]/masterName[/db][?sentinelPassword=…&sentinelUsername=…&waitForReplicas=N&waitTimeout=MS]';

const QUERY_KEYS = [
  'sentinelUsername',
  'sentinelPassword',
  'role',
  'waitForReplicas',
  'waitTimeout',
] as const;

const isPort = (port: unknown): port is number =>
  typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65_535;

/** `host:port` (or `[v6]:port`) → an address, or undefined. */
function parseAddress(text: string): SentinelAddress | undefined {
  const match = /^(\[[^\]]+\]|[^:/?#@,[\]\s]+):(\d{1,5})$/u.exec(text.trim());
  if (!match) return undefined;
  const port = Number(match[2]);
  const host = (match[1] ?? '').replace(/^\[(.*)\]$/u, '$1');
  return isPort(port) && host.length > 0 ? { host, port } : undefined;
}

/** Checks a `waitForReplicas` value; `option` names it in the error. */
export function checkWaitForReplicas(value: unknown, option = 'waitForReplicas'): WaitForReplicas {
  const allowed = '{ replicas, timeout }: integers >= 1 (a replica count and milliseconds)';
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(messages.invalidOption(option, value, allowed));
  }
  const keys = Object.keys(value);
  const unknown = keys.find((key) => key !== 'replicas' && key !== 'timeout');
  if (unknown !== undefined) {
    throw new TypeError(messages.unknownOption(unknown, option, ['replicas', 'timeout']));
  }
  const { replicas, timeout } = value as Record<string, unknown>;
  for (const [key, n] of [
    ['replicas', replicas],
    ['timeout', timeout],
  ] as const) {
    if (typeof n !== 'number') {
      throw new TypeError(messages.invalidOption(`${option}.${key}`, n, 'an integer >= 1'));
    }
    if (!Number.isInteger(n) || n < 1 || n > 2_147_483_647) {
      throw new RangeError(messages.invalidOption(`${option}.${key}`, n, 'an integer >= 1'));
    }
  }
  return { replicas: replicas as number, timeout: timeout as number };
}

/** What `connectRedis` makes of a Sentinel setting: ioredis options, and the WAIT option. */
export interface SentinelSetting {
  /** Options for `new Redis(options)`, `sentinels` and `name` included; undefined: not Sentinel. */
  readonly options: Record<string, unknown> | undefined;
  readonly waitForReplicas: WaitForReplicas | undefined;
}

/**
 * Takes apart a `connection` object of the Redis backend: validates a Sentinel setup
 * (`sentinels` + `name`, `role` only `master`, `sentinelUsername`/`sentinelPassword` strings) and
 * takes out `waitForReplicas` (which is ours, not ioredis's). The rest goes to ioredis as it is.
 */
export function parseRedisOptions(connection: Readonly<Record<string, unknown>>): {
  readonly options: Record<string, unknown>;
  readonly waitForReplicas: WaitForReplicas | undefined;
} {
  const options = { ...connection };
  let waitForReplicas: WaitForReplicas | undefined;
  if (options['waitForReplicas'] !== undefined) {
    waitForReplicas = checkWaitForReplicas(
      options['waitForReplicas'],
      'connection.waitForReplicas',
    );
  }
  delete options['waitForReplicas'];
  if (options['sentinels'] === undefined) return { options, waitForReplicas };
  const listed = options['sentinels'];
  const allowedList = 'a non-empty array of { host, port } (or "host:port" strings)';
  if (!Array.isArray(listed) || listed.length === 0) {
    throw new TypeError(messages.invalidOption('connection.sentinels', listed, allowedList));
  }
  options['sentinels'] = listed.map((entry: unknown, i) => {
    const address =
      typeof entry === 'string'
        ? parseAddress(entry)
        : typeof entry === 'object' &&
            entry !== null &&
            typeof (entry as { host?: unknown }).host === 'string' &&
            (entry as { host: string }).host.length > 0 &&
            isPort((entry as { port?: unknown }).port)
          ? { ...(entry as SentinelAddress) }
          : undefined;
    if (!address) {
      throw new TypeError(
        messages.invalidOption(
          `connection.sentinels[${i}]`,
          entry,
          '{ host: a non-empty string, port: an integer 1-65535 } or "host:port"',
        ),
      );
    }
    return address;
  });
  const name = options['name'];
  if (typeof name !== 'string' || name.trim().length === 0) {
    throw new TypeError(
      messages.invalidOption(
        'connection.name',
        name,
        "the master's name as the Sentinels know it (a non-empty string such as 'mymaster')",
      ),
    );
  }
  const role = options['role'];
  if (role !== undefined && role !== 'master') {
    throw new TypeError(
      messages.invalidOption(
        'connection.role',
        role,
        "'master' (locks are writes: a replica cannot take them)",
      ),
    );
  }
  for (const key of ['sentinelUsername', 'sentinelPassword', 'username', 'password']) {
    const value = options[key];
    if (value !== undefined && typeof value !== 'string') {
      throw new TypeError(messages.invalidOption(`connection.${key}`, value, 'a string'));
    }
  }
  return { options, waitForReplicas };
}

/** Parses a `redis+sentinel://` URL (see SENTINEL_URL) into ioredis options and WAIT settings. */
export function parseSentinelUrl(url: string): SentinelSetting & {
  readonly options: Record<string, unknown>;
} {
  const fail = (why: string): never => {
    throw new TypeError(`${messages.invalidOption('connection', url, ALLOWED_URL)} (${why})`);
  };
  const rest = url.replace(SENTINEL_URL, '');
  const hash = rest.indexOf('#');
  const noHash = hash === -1 ? rest : rest.slice(0, hash);
  const q = noHash.indexOf('?');
  const beforeQuery = q === -1 ? noHash : noHash.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : noHash.slice(q + 1));
  const slash = beforeQuery.indexOf('/');
  const authority = slash === -1 ? beforeQuery : beforeQuery.slice(0, slash);
  const path = slash === -1 ? '' : beforeQuery.slice(slash + 1);
  const at = authority.lastIndexOf('@');
  const userInfo = at === -1 ? undefined : authority.slice(0, at);
  const hosts = at === -1 ? authority : authority.slice(at + 1);
  const options: Record<string, unknown> = {};
  if (userInfo !== undefined) {
    const colon = userInfo.indexOf(':');
    const username = decodeURIComponent(colon === -1 ? userInfo : userInfo.slice(0, colon));
    const password = colon === -1 ? '' : decodeURIComponent(userInfo.slice(colon + 1));
    if (username) options['username'] = username;
    if (password) options['password'] = password;
  }
  const sentinels = hosts.split(',').map((part) => parseAddress(part));
  if (sentinels.length === 0 || sentinels.some((s) => s === undefined)) {
    fail('every Sentinel must be host:port');
  }
  options['sentinels'] = sentinels;
  const [name, db, extra] = path.split('/');
  if (!name) fail('the master name is missing');
  options['name'] = decodeURIComponent(name ?? '');
  if (extra !== undefined && extra !== '') fail('too many path segments');
  if (db !== undefined && db !== '') {
    if (!/^\d{1,4}$/u.test(db)) fail('the database must be a number');
    options['db'] = Number(db);
  }
  for (const key of query.keys()) {
    if (!(QUERY_KEYS as readonly string[]).includes(key)) {
      throw new TypeError(messages.unknownOption(key, 'a redis+sentinel:// URL', QUERY_KEYS));
    }
  }
  const sentinelUsername = query.get('sentinelUsername');
  const sentinelPassword = query.get('sentinelPassword');
  if (sentinelUsername) options['sentinelUsername'] = sentinelUsername;
  if (sentinelPassword) options['sentinelPassword'] = sentinelPassword;
  const role = query.get('role');
  if (role !== null) options['role'] = role;
  const replicas = query.get('waitForReplicas');
  const timeout = query.get('waitTimeout');
  if (timeout !== null && replicas === null) fail('waitTimeout needs waitForReplicas');
  const waitForReplicas =
    replicas === null
      ? undefined
      : checkWaitForReplicas(
          { replicas: Number(replicas), timeout: timeout === null ? 100 : Number(timeout) },
          'connection (redis+sentinel:// waitForReplicas / waitTimeout)',
        );
  const checked = parseRedisOptions(options);
  return { options: checked.options, waitForReplicas };
}
