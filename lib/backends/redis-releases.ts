import type { ReleaseWaiter } from '../core/base-lock.js';
import { Alarm } from '../core/timing.js';

/** The part of an ioredis client this needs to make and use a subscriber connection. */
export interface SubscriberSource {
  duplicate(): Subscriber;
}

interface Subscriber {
  subscribe(channel: string): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  on(event: 'message', listener: (channel: string, message: string) => void): unknown;
  on(event: 'ready', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  disconnect(): void;
}

/** How long a waiter waits for a release message before it tries again anyway. */
export const FALLBACK_POLL = 2_000;

/**
 * How long a channel stays subscribed (and the connection open) after its last waiter left, so
 * that the next contended acquire on that lock need not connect and subscribe again first.
 */
export const LINGER = 1_000;

/**
 * One subscriber connection per client, shared by all the waiting acquires of that client: the
 * release script publishes on the lock's channel, and every local waiter of that lock wakes.
 * The connection is opened for the first waiter and closed a second after the last one left (the
 * subscription lingers so that back-to-back contention does not reconnect), so an idle process
 * holds no extra connection and can exit.
 */
class ReleaseChannels {
  private subscriber: Subscriber | undefined;
  private readonly listeners = new Map<string, Set<() => void>>();
  /** Channels with no waiter left, still subscribed until their timer runs out. */
  private readonly lingering = new Map<string, NodeJS.Timeout>();

  constructor(private readonly source: SubscriberSource) {}

  async join(channel: string, wake: () => void): Promise<() => void> {
    const subscriber = this.connect();
    let set = this.listeners.get(channel);
    const linger = this.lingering.get(channel);
    if (linger) {
      clearTimeout(linger);
      this.lingering.delete(channel);
    }
    const first = !set && !linger;
    if (!set) this.listeners.set(channel, (set = new Set()));
    set.add(wake);
    const leave = () => this.leave(channel, wake);
    if (first) {
      try {
        await subscriber.subscribe(channel);
      } catch (err) {
        leave();
        throw err;
      }
    }
    return leave;
  }

  private connect(): Subscriber {
    if (this.subscriber) return this.subscriber;
    const subscriber = this.source.duplicate();
    subscriber.on('message', (channel) => this.listeners.get(channel)?.forEach((wake) => wake()));
    // After a reconnect, messages may have been missed: let every waiter try again.
    subscriber.on('ready', () => this.listeners.forEach((set) => set.forEach((wake) => wake())));
    // While the server is away the waiters poll and ioredis reconnects: nothing to report here.
    subscriber.on('error', () => undefined);
    this.subscriber = subscriber;
    return subscriber;
  }

  private leave(channel: string, wake: () => void): void {
    const set = this.listeners.get(channel);
    if (!set?.delete(wake) || set.size > 0) return;
    this.listeners.delete(channel);
    const timer = setTimeout(() => this.drop(channel), LINGER);
    timer.unref();
    this.lingering.set(channel, timer);
  }

  /** Unsubscribes a channel nobody waits on; closes the connection when none is left. */
  private drop(channel: string): void {
    this.lingering.delete(channel);
    const subscriber = this.subscriber;
    if (!subscriber) return;
    if (this.listeners.size === 0 && this.lingering.size === 0) {
      this.subscriber = undefined;
      subscriber.disconnect();
    } else {
      subscriber.unsubscribe(channel).catch(() => undefined);
    }
  }
}

const byClient = new WeakMap<object, ReleaseChannels>();

/**
 * A waiter woken by the release message on `channel`, or when `ttl()` (the holder's remaining
 * time to live, as last seen; negative if unknown) runs out, or after `FALLBACK_POLL`.
 */
export async function waitForRelease(
  client: SubscriberSource,
  channel: string,
  ttl: () => number,
): Promise<ReleaseWaiter> {
  let channels = byClient.get(client);
  if (!channels) byClient.set(client, (channels = new ReleaseChannels(client)));
  const alarm = new Alarm();
  const leave = await channels.join(channel, alarm.ring);
  return {
    async wait(remaining, signal) {
      const holderTtl = ttl();
      const ms = Math.min(remaining, FALLBACK_POLL, holderTtl >= 0 ? holderTtl + 1 : Infinity);
      await alarm.sleep(ms, signal);
    },
    close: leave,
  };
}
