import { randomBytes } from 'node:crypto';

import { type Queued, TIMED_ID } from '../../core/dated-grant.js';
import { now } from '../../core/timing.js';

/**
 * Waking waiters with LISTEN/NOTIFY. Each pool has at most one listening connection of its own (a
 * `pg.Client` made from the pool's options, outside the pool, so that waiting never takes a
 * pooled connection): opened when a blocking acquire first waits, closed a second after the last
 * one stopped. It listens on two channels: its own grant channel (`sherlock_grant_<random>`), on
 * which a release that gives the lock to one of its waiters says `<id> <fencing token> <server
 * ms>` (see line.ts), and `sherlock_release`, on which a force-release that left nobody in line
 * says the key (every waiter of the key then attempts: one not in the line now takes the free
 * lock; a force-release with someone in line grants the first, as a release). Its loss (the server restarted,
 * the network cut) wakes every waiter, which attempts again once it listens again.
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
  /** Its id on the listener's grant channel (set once it listens). */
  id?: string;
  /** The owner token it queued with: a release that grants it the lock sets the row to it. */
  token?: string;
  /**
   * A grant received, not yet taken by an attempt: its message after the id (`<fencing token>
   * [<server ms>]`) and when it arrived. Dated when taken (core/dated-grant.ts `grantOf`), with
   * the clocks of the waiter's last attempt before then (`queued`).
   */
  grant?: { readonly message: string; readonly arrival: number };
  /** The last refused attempt of this waiter: when it was sent, the server's time when it ran. */
  queued?: Queued;
  closed: boolean;
}

export class ReleaseListener {
  private readonly waiters = new Map<string, Set<PgWaiter>>();
  /** The waiters by their id on the grant channel. */
  private readonly byId = new Map<string, PgWaiter>();
  private nextId = 0;
  /** This listener's grant channel (one per listener, kept across reconnects). */
  readonly channel = `sherlock_grant_${randomBytes(12).toString('hex')}`;
  /** The listening connection's backend pid while it listens (0: not listening). */
  pid = 0;
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
      if (payload === undefined) return;
      if (channel === this.channel) this.granted(payload);
      else if (channel === RELEASE_CHANNEL) {
        for (const waiter of this.waiters.get(payload) ?? []) waiter.wake();
      }
    });
    client.on('error', () => this.drop(client));
    client.on('end', () => this.drop(client));
    try {
      await client.connect();
      const reply = (await client.query(
        `LISTEN ${RELEASE_CHANNEL}; LISTEN ${this.channel}; SELECT pg_backend_pid() AS pid`,
      )) as { rows?: { pid?: unknown }[] }[] | { rows?: { pid?: unknown }[] };
      const last = Array.isArray(reply) ? reply[reply.length - 1] : reply;
      if (this.client === client) this.pid = Number(last?.rows?.[0]?.pid ?? 0);
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
    this.pid = 0;
    client.end().catch(() => undefined);
    for (const set of this.waiters.values()) {
      for (const waiter of set) {
        waiter.armed = false;
        waiter.wake();
      }
    }
  }

  /**
   * `<id> <fencing token> <server ms>` (an older releaser: `<id> <fencing token>`): a release gave
   * the lock to the waiter `id`.
   */
  private granted(payload: string): void {
    const space = payload.indexOf(' ');
    const waiter = this.byId.get(payload.slice(0, space));
    if (space < 0 || !waiter || waiter.closed) return;
    waiter.grant ??= { message: payload.slice(space + 1), arrival: now() };
    waiter.wake();
  }

  /** Gives `waiter` its id on the grant channel (once). */
  enlist(waiter: PgWaiter): void {
    if (waiter.id !== undefined) return;
    waiter.id = `${(this.nextId++).toString(36)}${TIMED_ID}`;
    this.byId.set(waiter.id, waiter);
  }

  add(waiter: PgWaiter): void {
    const set = this.waiters.get(waiter.key);
    if (set) set.add(waiter);
    else this.waiters.set(waiter.key, new Set([waiter]));
  }

  remove(waiter: PgWaiter): void {
    if (waiter.id !== undefined && this.byId.get(waiter.id) === waiter) this.byId.delete(waiter.id);
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
    this.pid = 0;
    client?.end().catch(() => undefined);
  }
}
