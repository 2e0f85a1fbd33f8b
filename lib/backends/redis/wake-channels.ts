import { randomBytes } from 'node:crypto';

import { TIMED_ID } from '../../core/dated-grant.js';
import { tagForSlot } from './slots.js';

/** The part of an ioredis client (`Redis` or `Cluster`) this needs to make subscriber connections. */
export interface SubscriberSource {
  duplicate(...args: unknown[]): Subscriber;
  on?(event: 'ready', listener: () => void): unknown;
}

interface Subscriber {
  subscribe(channel: string): Promise<unknown>;
  ssubscribe?(channel: string): Promise<unknown>;
  on(event: 'message' | 'smessage', listener: (channel: string, message: string) => void): unknown;
  on(event: 'ready' | 'close' | '+subscriber' | '-subscriber', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  disconnect(): void;
}

/**
 * How a release reaches a lock's waiter, said in its queue entry (see scripts.ts, GRANT_NEXT):
 * `p` plain pub/sub on one server, `s` sharded pub/sub (Redis 7) in a Cluster, `b` plain pub/sub
 * in a Cluster whose servers have no sharded pub/sub (broadcast to every node).
 */
export type WakeMode = 'p' | 's' | 'b';

/**
 * What a message for a waiter carries: nothing (a wake-up), or a grant: its fencing token, and
 * after a space the server's time of the grant in ms (absent from an older releaser).
 */
export type Wake = (grant?: string) => void;

/**
 * How long the subscriber connections stay open after their last waiter left (at least; at most
 * twice that), so that back-to-back contention does not connect and subscribe again each time.
 */
export const LINGER = 1_000;

/** A waiter's channel: where the release script publishes `<id>` or `<id> <fencing token>`. */
export interface Joined {
  readonly mode: WakeMode;
  readonly channel: string;
  readonly id: string;
  /** `<channel> <id>`: a semaphore waiter's queue entry. */
  readonly entry: string;
  leave(): void;
}

/** The error of a server without sharded pub/sub (before Redis 7). */
const NO_SHARDED = /unknown command|ERR unknown|not supported/i;

/**
 * The subscriber connections of one client, shared by all the waiting acquires of that client.
 * Plain pub/sub: one connection (a duplicate of the client) subscribed to one channel
 * `sherlock:wake:<client id>` (a plain SUBSCRIBE, which an ACL channel pattern such as
 * `&sherlock:wake:*` allows). A Redis Cluster client's lock waiters use sharded pub/sub instead
 * (SSUBSCRIBE, Redis 7): one channel per slot in use, `sherlock:wake:{<slot tag>}:<client id>`, in
 * the lock's own slot, so that the release script may SPUBLISH to it and the message goes to the
 * shard that owns the lock only (and its reply counts the listeners exactly). A Cluster whose
 * servers lack it falls back to plain pub/sub (mode `b`). Each waiting acquire has an id; the
 * connections are opened for the first waiter and closed 1 to 2 s after the last one left.
 */
export class WakeChannels {
  /** Random per client object: channels of different processes and clients never collide. */
  private readonly clientId = randomBytes(9).toString('base64url');
  private readonly channel = `sherlock:wake:${this.clientId}`;
  private readonly waiters = new Map<string, Wake>();
  private subscriber: Subscriber | undefined;
  private subscribed: Promise<unknown> | undefined;
  private sharded: Subscriber | undefined;
  /** Sharded subscriptions, by slot. */
  private slots = new Map<number, Promise<unknown>>();
  /** The servers have no sharded pub/sub: Cluster waiters use plain pub/sub. */
  private noSharded = false;
  private linger: NodeJS.Timeout | undefined;
  /** Waiters that joined so far (their ids): a linger timer that sees it unchanged closes. */
  private count = 0;
  /** `count` when the linger timer was armed. */
  private countAtLinger = 0;

  private constructor(
    private readonly source: SubscriberSource,
    private readonly cluster: boolean,
  ) {
    // The client's own connection made again (a restart, a Sentinel failover): an attempt made
    // while it was away failed, and a grant published meanwhile was lost. Wake every waiter once
    // both connections are back (the subscriber's `ready` below covers the other order).
    source.on?.('ready', this.wakeAll);
  }

  private static readonly byClient = new WeakMap<object, WakeChannels>();

  /**
   * Whether a plain pub/sub waiter of `client` would listen at once: its subscriber connection
   * is subscribed and has not dropped since (a Cluster's sharded subscriptions: no, see `join`).
   */
  static ready(client: object): boolean {
    return WakeChannels.byClient.get(client)?.live === true;
  }

  /** The plain subscription is in place (set once SUBSCRIBE replied, cleared on any drop). */
  private live = false;

  /** The wake channels of `client` (one per client object); `cluster`: it is a Redis Cluster. */
  static of(client: SubscriberSource, cluster = false): WakeChannels {
    let channels = WakeChannels.byClient.get(client);
    if (!channels)
      WakeChannels.byClient.set(client, (channels = new WakeChannels(client, cluster)));
    return channels;
  }

  /** Whether lock waiters on this client get sharded pub/sub (known after the first `join`). */
  get mode(): WakeMode {
    if (!this.cluster) return 'p';
    return this.noSharded ? 'b' : 's';
  }

  /**
   * A new waiter id, whose messages call `wake`; resolves once the server has the subscription.
   * `slot`: a lock waiter's slot, for sharded pub/sub in a Cluster; without it (semaphores),
   * plain pub/sub.
   */
  async join(wake: Wake, slot?: number): Promise<Joined> {
    // A linger timer still armed is left so (it sees this join and does not close): no
    // clearTimeout and setTimeout again per waiting acquire, on the hand-off path.
    const id = `${(this.count++).toString(36)}${TIMED_ID}`;
    this.waiters.set(id, wake);
    const leave = () => this.leave(id);
    try {
      if (slot !== undefined && this.cluster && !this.noSharded) {
        const channel = `sherlock:wake:{${tagForSlot(slot)}}:${this.clientId}`;
        if (await this.connectSharded(slot, channel)) {
          return { mode: 's', channel, id, entry: `${channel} ${id}`, leave };
        }
      }
      await this.connect();
    } catch (err) {
      leave();
      throw err;
    }
    const mode: WakeMode = this.cluster ? 'b' : 'p';
    return { mode, channel: this.channel, id, entry: `${this.channel} ${id}`, leave };
  }

  private onMessage = (_channel: string, message: string): void => {
    const space = message.indexOf(' ');
    if (space === -1) this.waiters.get(message)?.();
    else this.waiters.get(message.slice(0, space))?.(message.slice(space + 1));
  };

  /**
   * The subscriber connection was lost (each waiter tries at once: a server that is gone is
   * found now, not at a fallback poll that may be minutes away), or is back (messages may have
   * been missed): let every waiter try again.
   */
  private wakeAll = (): void => this.waiters.forEach((wake) => wake());

  private connect(): Promise<unknown> {
    if (this.subscribed) return this.subscribed;
    const subscriber = this.source.duplicate();
    let connected = false;
    subscriber.on('message', this.onMessage);
    subscriber.on('ready', () => {
      if (connected) this.wakeAll();
      connected = true;
    });
    subscriber.on('close', () => {
      if (this.subscriber !== subscriber) return;
      this.live = false;
      this.wakeAll();
    });
    // While the server is away the waiters poll and ioredis reconnects: nothing to report here.
    subscriber.on('error', () => undefined);
    this.subscriber = subscriber;
    this.subscribed = subscriber.subscribe(this.channel).then(
      (reply: unknown) => {
        if (this.subscriber === subscriber && !this.cluster) {
          this.live = true;
        }
        return reply;
      },
      (err: unknown) => {
        this.close();
        throw err;
      },
    );
    return this.subscribed;
  }

  /** SSUBSCRIBEs to `channel` (once per slot); false when the servers have no sharded pub/sub. */
  private async connectSharded(slot: number, channel: string): Promise<boolean> {
    let subscribing = this.slots.get(slot);
    if (!subscribing) {
      let sharded = this.sharded;
      if (!sharded) {
        sharded = this.source.duplicate([], { shardedSubscribers: true });
        sharded.on('smessage', this.onMessage);
        // A shard's subscriber connection lost and made again: messages may have been missed.
        let lost = false;
        sharded.on('-subscriber', () => {
          lost = true;
          this.wakeAll();
        });
        sharded.on('+subscriber', () => {
          if (lost) this.wakeAll();
          lost = false;
        });
        sharded.on('error', () => undefined);
        this.sharded = sharded;
      }
      if (typeof sharded.ssubscribe !== 'function') return this.withoutSharded();
      subscribing = sharded.ssubscribe(channel);
      this.slots.set(slot, subscribing);
    }
    try {
      await subscribing;
      return true;
    } catch (err) {
      this.slots.delete(slot);
      if (NO_SHARDED.test(String((err as Error | undefined)?.message)))
        return this.withoutSharded();
      throw err;
    }
  }

  private withoutSharded(): false {
    this.noSharded = true;
    return false;
  }

  private leave(id: string): void {
    if (!this.waiters.delete(id) || this.waiters.size > 0 || this.linger) return;
    this.lingerAgain();
  }

  private lingerAgain(): void {
    this.countAtLinger = this.count;
    this.linger = setTimeout(this.lingered, LINGER);
    this.linger.unref();
  }

  /**
   * Closes the connections if nobody joined since the timer was armed (so they have been unused
   * for `LINGER` ms); if someone joined and left meanwhile, waits `LINGER` more (the connections
   * close 1 to 2 s after the last waiter left).
   */
  private lingered = (): void => {
    this.linger = undefined;
    if (this.waiters.size > 0) return; // the next one to leave arms it again
    if (this.count === this.countAtLinger) this.close();
    else this.lingerAgain();
  };

  private close(): void {
    this.live = false;
    const subscriber = this.subscriber;
    const sharded = this.sharded;
    this.subscriber = undefined;
    this.subscribed = undefined;
    this.sharded = undefined;
    this.slots = new Map();
    subscriber?.disconnect();
    sharded?.disconnect();
  }
}
