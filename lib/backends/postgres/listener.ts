/**
 * Waking waiters with LISTEN/NOTIFY. A release deletes the lock's row and, in the same statement,
 * `pg_notify('sherlock_release', key)`: PostgreSQL delivers it at commit to every connection that
 * listens on the channel. Each pool has at most one listening connection of its own (a `pg.Client`
 * made from the pool's options, outside the pool, so that waiting never takes a pooled
 * connection): opened when a blocking acquire first waits, closed a second after the last one
 * stopped. Its loss (the server restarted, the network cut) wakes every waiter, which then polls
 * until it listens again.
 */
export const RELEASE_CHANNEL = 'sherlock_release';

/** How long a listening connection with no waiter left is kept, in case another comes. */
const IDLE_CLOSE_MS = 1_000;

/** The part of a `pg.Client` the listener uses. */
export interface ListeningClient {
  connect(): Promise<unknown>;
  query(text: string): Promise<unknown>;
  end(): Promise<void>;
  on(
    event: 'notification',
    listener: (message: { channel: string; payload?: string }) => void,
  ): unknown;
  on(event: 'error' | 'end', listener: (error?: Error) => void): unknown;
}

/** A blocking acquire waiting for a release of `key`. */
export interface PgWaiter {
  readonly key: string;
  readonly wake: () => void;
  /** Registered with a listener that was listening before the waiter's last attempt. */
  armed: boolean;
}

export class ReleaseListener {
  private readonly waiters = new Map<string, Set<PgWaiter>>();
  private client: ListeningClient | undefined;
  private ready: Promise<void> | undefined;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly makeClient: () => ListeningClient) {}

  /** Resolves once this listener listens (connecting first if needed); rejects if it cannot. */
  start(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.ready ??= this.open();
    return this.ready;
  }

  private async open(): Promise<void> {
    const client = this.makeClient();
    this.client = client;
    client.on('notification', ({ channel, payload }) => {
      if (channel !== RELEASE_CHANNEL || payload === undefined) return;
      for (const waiter of this.waiters.get(payload) ?? []) waiter.wake();
    });
    client.on('error', () => this.drop(client));
    client.on('end', () => this.drop(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${RELEASE_CHANNEL}`);
    } catch (error) {
      this.drop(client);
      throw error;
    }
  }

  /** The connection is gone: every waiter is woken (it polls until it listens again). */
  private drop(client: ListeningClient): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.ready = undefined;
    client.end().catch(() => undefined);
    for (const set of this.waiters.values()) {
      for (const waiter of set) {
        waiter.armed = false;
        waiter.wake();
      }
    }
  }

  add(waiter: PgWaiter): void {
    const set = this.waiters.get(waiter.key);
    if (set) set.add(waiter);
    else this.waiters.set(waiter.key, new Set([waiter]));
  }

  remove(waiter: PgWaiter): void {
    const set = this.waiters.get(waiter.key);
    if (!set?.delete(waiter)) return;
    if (set.size === 0) this.waiters.delete(waiter.key);
    if (this.waiters.size === 0 && this.client && !this.idleTimer) {
      this.idleTimer = setTimeout(() => this.closeIfIdle(), IDLE_CLOSE_MS);
      this.idleTimer.unref();
    }
  }

  private closeIfIdle(): void {
    this.idleTimer = undefined;
    if (this.waiters.size === 0) this.close();
  }

  /** Closes the listening connection (a waiter coming later opens another). */
  close(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const client = this.client;
    this.client = undefined;
    this.ready = undefined;
    client?.end().catch(() => undefined);
  }
}
