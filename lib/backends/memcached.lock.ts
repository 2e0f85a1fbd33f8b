import { createHash } from 'node:crypto';
import { type AcquireResult, BaseLock, type BaseLockOptions } from '../core/base-lock.js';
import { loadDriver } from '../core/driver.js';
import { messages } from '../core/messages.js';
import { sleep } from '../core/timing.js';
import { checkConnection, checkWholeSeconds } from '../core/options.js';
import { backends, registerAlias, type ClientClass } from '../core/registry.js';
import {
  add,
  deleteIfUnchanged,
  gets,
  increment,
  type MemjsClient,
  setIfUnchanged,
} from './memcached.protocol.js';

interface MemjsModule {
  Client: ClientClass & { create(servers: string, options: Record<string, unknown>): MemjsClient };
}

/** Memcached reads an expiration above 30 days as an absolute Unix time: refused. */
export const MEMCACHED_MAX_EXPIRE = 30 * 24 * 60 * 60 * 1000;
const MAX_KEY_BYTES = 250;
/** The fencing counter's key ends with this (a space: never in a lock's key). */
const FENCE_SUFFIX = ' fence';

/** The key of a lock's fencing counter: `<key> fence`, or `<sha256 of key> fence` if too long. */
function fenceKeyOf(key: string): string {
  const plain = `${key}${FENCE_SUFFIX}`;
  if (Buffer.byteLength(plain) <= MAX_KEY_BYTES) return plain;
  return `${createHash('sha256').update(key).digest('hex')}${FENCE_SUFFIX}`;
}

/** Options of a MemcachedLock: the lock options and an optional memjs `Client`. */
export type MemcachedLockOptions = BaseLockOptions;

/**
 * A lock in Memcached: `add` of the key `namespace_name` with the owner token, expiring after
 * `expire` rounded **up** to whole seconds (Memcached's granularity); released by a GET that keeps
 * the item's CAS value and a DELETE carrying it, so only the owner's unchanged item is deleted.
 *
 * @example
 * import memjs from 'memjs';
 * const lock = new MemcachedLock('report', { client: memjs.Client.create('127.0.0.1:11211') });
 */
export class MemcachedLock extends BaseLock {
  constructor(name: string, options?: MemcachedLockOptions) {
    super(name, options);
  }

  private get memcached(): MemjsClient {
    return this.client as MemjsClient;
  }

  protected override validateName(name: unknown): asserts name is string {
    super.validateName(name);
    const key = this.formatKey(name, this.namespace);
    if (/\s/u.test(key)) {
      throw new RangeError(
        messages.invalidName(
          'memcached',
          name,
          'whitespace is not allowed in memcached keys (namespace included)',
        ),
      );
    }
    const bytes = Buffer.byteLength(key);
    if (bytes > MAX_KEY_BYTES) {
      throw new RangeError(
        messages.invalidName(
          'memcached',
          name,
          `the key would be ${bytes} bytes long; memcached allows at most ${MAX_KEY_BYTES}`,
        ),
      );
    }
  }

  protected override validateExpire(expire: number | null): void {
    checkWholeSeconds('memcached', expire);
    if (expire !== null && expire > MEMCACHED_MAX_EXPIRE) {
      throw new RangeError(
        messages.invalidOption(
          'expire',
          expire,
          `at most ${MEMCACHED_MAX_EXPIRE} ms (30 days) on memcached, which reads longer expirations as absolute dates; or null for no expiry`,
        ),
      );
    }
  }

  /**
   * Memcached's clock ticks once a second, so an item stored for n seconds may be gone after just
   * over n - 1 (when it was stored right before a tick): the loss signal counts on that much.
   */
  protected override minimumLifetime(ttl: number): number {
    return (Math.ceil(ttl / 1000) - 1) * 1000;
  }

  /** The key of this lock's fencing counter. */
  readonly fenceKey = fenceKeyOf(this.key);

  /** The expiration sent to memcached: whole seconds, rounded up; 0 means never. */
  protected get expirationSeconds(): number {
    return this.expire === null ? 0 : Math.ceil(this.expire / 1000);
  }

  /**
   * Takes the lock with `add`, then counts it on the key `<key> fence`. Best effort: memcached
   * may evict the counter, so it is created at the current time in microseconds, which keeps it
   * above any value it had unless the clock went back or more than a million locks per second
   * were taken on one name.
   */
  protected async _acquire(token: string): Promise<AcquireResult> {
    if (!(await add(this.memcached, this.key, token, this.expirationSeconds))) return false;
    const initial = BigInt(Date.now()) * 1000n;
    // On the lock's own server: with several servers, one server down affects only its locks.
    const fence = await increment(this.memcached, this.fenceKey, initial, this.key);
    return { fencingToken: fence.toString() };
  }

  protected override async _extend(token: string, ttl: number): Promise<boolean> {
    const item = await gets(this.memcached, this.key);
    if (!item || item.value !== token) return false;
    return setIfUnchanged(this.memcached, this.key, token, Math.ceil(ttl / 1000), item.cas);
  }

  protected async _release(token: string): Promise<boolean> {
    const item = await gets(this.memcached, this.key);
    if (!item || item.value !== token) return false;
    return deleteIfUnchanged(this.memcached, this.key, item.cas);
  }

  /** Memcached cannot announce releases: waiters poll, with jitter so they do not move in step. */
  protected override async waitForRetry(ms: number, signal?: AbortSignal): Promise<void> {
    await sleep(ms * (0.5 + Math.random() / 2), signal);
  }

  protected async _locked(): Promise<boolean> {
    return (await gets(this.memcached, this.key)) !== null;
  }
}

/** sherlock's name for the Memcached lock. */
export { MemcachedLock as MCLock };

const memjs = () => loadDriver<MemjsModule>('memcached', 'memjs');

const QUIET = { retries: 1, logger: { log: () => undefined } };

/** A client from a server list (`'host:port,host:port'` or an array) or `{ servers, ...options }`. */
function connectMemcached(connection: unknown): MemjsClient {
  if (connection === undefined) return memjs().Client.create('127.0.0.1:11211', QUIET);
  const settings = checkConnection('memcached', connection);
  if (typeof settings === 'string') return memjs().Client.create(settings, QUIET);
  if (Array.isArray(settings)) return memjs().Client.create(settings.join(','), QUIET);
  const { servers, ...options } = settings as { servers?: unknown };
  const list =
    typeof servers === 'string' ? servers : Array.isArray(servers) ? servers.join(',') : undefined;
  if (!list) {
    throw new TypeError(
      messages.invalidOption(
        'connection.servers',
        servers,
        "a server list such as '127.0.0.1:11211' or an array of them",
      ),
    );
  }
  return memjs().Client.create(list, { ...QUIET, ...options });
}

/**
 * memjs `failover: true` sends a key to the next server when its own does not answer: a lock
 * whose server is slow or cut off would then be granted again on another server while its holder
 * still holds it on the first. Refused.
 */
function checkMemjsSettings(client: MemjsClient): void {
  const failover = (client as { options?: { failover?: unknown } }).options?.failover;
  if (failover === true) {
    throw new TypeError(
      messages.invalidOption(
        'failover',
        failover,
        'false for a memjs client used for locks: with failover a lock whose server does not answer is granted again on another server while its holder still holds it',
      ),
    );
  }
}

export const MEMCACHED = backends.register({
  name: 'memcached',
  lockClass: MemcachedLock,
  library: 'memjs',
  loadClientClass: () => memjs().Client,
  createClient: () => connectMemcached(undefined),
  connect: (connection) => {
    const client = connectMemcached(connection);
    try {
      checkMemjsSettings(client);
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  },
  checkClientSettings: checkMemjsSettings,
  closeClient: (client) => (client as MemjsClient).close(),
});

/** sherlock's `backends.MEMCACHE`. */
registerAlias('memcache', MEMCACHED);
