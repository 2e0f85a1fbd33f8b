import { randomBytes } from 'node:crypto';

/** The part of an ioredis client this needs to make and use a subscriber connection. */
export interface SubscriberSource {
  duplicate(): Subscriber;
}

interface Subscriber {
  subscribe(channel: string): Promise<unknown>;
  on(event: 'message', listener: (channel: string, message: string) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  disconnect(): void;
}

/**
 * How long the subscriber connection stays open after its last waiter left, so that back-to-back
 * contention does not connect and subscribe again each time.
 */
export const LINGER = 1_000;

/**
 * One subscriber connection per client, shared by all the waiting acquires of that client,
 * subscribed to one channel `sherlock:wake:<client id>` (a plain SUBSCRIBE, which an ACL channel
 * pattern such as `&sherlock:wake:*` allows); each waiting acquire has an id, and puts
 * `<channel> <id>` in the lock's queue; the release script publishes the id of the first waiter
 * in line on its channel. The connection is opened for the first waiter and closed a second
 * after the last one left, so an idle process holds no extra connection.
 */
export class WakeChannels {
  /** Random per client object: channels of different processes and clients never collide. */
  private readonly channel = `sherlock:wake:${randomBytes(9).toString('base64url')}`;
  private readonly waiters = new Map<string, () => void>();
  private subscriber: Subscriber | undefined;
  private subscribed: Promise<unknown> | undefined;
  private linger: NodeJS.Timeout | undefined;
  private count = 0;

  private constructor(private readonly source: SubscriberSource) {}

  private static readonly byClient = new WeakMap<object, WakeChannels>();

  /** The wake channels of `client` (one per client object). */
  static of(client: SubscriberSource): WakeChannels {
    let channels = WakeChannels.byClient.get(client);
    if (!channels) WakeChannels.byClient.set(client, (channels = new WakeChannels(client)));
    return channels;
  }

  /**
   * A new waiter id, whose messages on the client's channel call `wake`; resolves once the server
   * has the subscription. The waiter's queue entry is `<channel> <id>`.
   */
  async join(wake: () => void): Promise<{ entry: string; leave: () => void }> {
    clearTimeout(this.linger);
    this.linger = undefined;
    const id = (this.count++).toString(36);
    this.waiters.set(id, wake);
    const leave = () => this.leave(id);
    try {
      await this.connect();
    } catch (err) {
      leave();
      throw err;
    }
    return { entry: `${this.channel} ${id}`, leave };
  }

  private connect(): Promise<unknown> {
    if (this.subscribed) return this.subscribed;
    const subscriber = this.source.duplicate();
    let connected = false;
    subscriber.on('message', (_channel, id) => this.waiters.get(id)?.());
    // After a reconnect, messages may have been missed: let every waiter try again.
    subscriber.on('ready', () => {
      if (connected) this.waiters.forEach((wake) => wake());
      connected = true;
    });
    // While the server is away the waiters poll and ioredis reconnects: nothing to report here.
    subscriber.on('error', () => undefined);
    this.subscriber = subscriber;
    this.subscribed = subscriber.subscribe(this.channel).catch((err: unknown) => {
      this.close();
      throw err;
    });
    return this.subscribed;
  }

  private leave(id: string): void {
    if (!this.waiters.delete(id) || this.waiters.size > 0 || this.linger) return;
    this.linger = setTimeout(() => {
      this.linger = undefined;
      if (this.waiters.size === 0) this.close();
    }, LINGER);
    this.linger.unref();
  }

  private close(): void {
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    this.subscribed = undefined;
    subscriber?.disconnect();
  }
}
