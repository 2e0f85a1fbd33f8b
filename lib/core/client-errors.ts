/**
 * A client the library makes from `connection` settings is the library's: nobody else can attach
 * an 'error' listener to it. An EventEmitter (ioredis, pg's Pool) with no 'error' listener prints
 * "[ioredis] Unhandled error event" on every failed reconnect, or throws (Node's default), while
 * the failure already surfaces as the lock's typed error. This gives such a client, and the
 * clients inside it (a Redlock quorum's), a listener that drops the event.
 */

interface Emitter {
  on(event: 'error', listener: (error: unknown) => void): unknown;
  listenerCount(event: 'error'): number;
}

const isEmitter = (value: unknown): value is Emitter =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as Partial<Emitter>).on === 'function' &&
  typeof (value as Partial<Emitter>).listenerCount === 'function';

const ignore = (): void => undefined;

/** Adds an 'error' listener to `client` (and its `clients`) where none is attached; returns it. */
export function listenForErrors<C extends object>(client: C): C {
  const inner = (client as { clients?: unknown }).clients;
  for (const each of [client, ...(Array.isArray(inner) ? inner : [])]) {
    if (isEmitter(each) && each.listenerCount('error') === 0) each.on('error', ignore);
  }
  return client;
}
