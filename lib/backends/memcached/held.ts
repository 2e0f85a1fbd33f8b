/**
 * Release and extend in one request, by the CAS value of the holder's own item.
 *
 * Every binary-protocol answer carries the item's CAS value, and memcached draws CAS values from
 * one counter per server process that only grows while it runs (`get_cas_id()` in memcached's
 * items.c; every store, incr and CAS-replace takes the next one; a delete or a touch takes none).
 * So the CAS value the `add` answered with names the holder's item and no other item that server
 * process will ever hold: a DELETE carrying it deletes the holder's item if it is still there
 * unchanged, and nothing else. No GET first: 2 round trips per acquire + release, not 3.
 *
 * Not across a restart: a restarted memcached counts from 1 again, so an old CAS value could be
 * a new holder's by coincidence. A restart always breaks the TCP connection, and memjs replaces
 * its socket object when it reconnects, so a CAS value is only sent on the socket it came on
 * ("same socket object" proves "same server process"). Any other case, a CAS value that no longer
 * matches (an extend whose answer was lost, say), or a memjs without that socket: the caller
 * falls back to GET + CAS-checked DELETE (or SET), which checks the owner token itself.
 */
import {
  type CasOutcome,
  deleteOnConnection,
  type MemjsClient,
  type Stored,
  setOnConnection,
} from './protocol.js';

/** What a holding keeps from its `add` (the backend's `held`): updated by each extend. */
export interface MemcachedHeld {
  /** The CAS value of the holder's item as last stored. */
  cas: Buffer;
  /** The memjs socket object that answered with `cas`. */
  connection: object;
}

/** Memcached run with `-C` (no CAS) answers 0: a DELETE carrying 0 would delete any item. */
const usable = (cas: Buffer) => cas.some((byte) => byte !== 0);

/**
 * The `held` of a new holding from what its `add` stored (`undefined` when it cannot be used), or,
 * given `held`, updates it in place with a later store's CAS value and connection.
 */
export function remember(stored: Stored, held?: MemcachedHeld): MemcachedHeld | undefined {
  const { cas, connection } = stored;
  if (!connection || !usable(cas)) {
    if (held) held.cas = Buffer.alloc(8); // unusable from now on: falls back
    return held;
  }
  if (!held) return { cas, connection };
  held.cas = cas;
  held.connection = connection;
  return held;
}

const decided = (outcome: CasOutcome): boolean | undefined =>
  outcome === 'gone' ? false : outcome === 'unsure' ? undefined : true;

/**
 * DELETE carrying the holding's CAS value: `true` released, `false` the item is gone (not held by
 * anyone), `undefined` when this cannot tell (read the item and decide).
 */
export async function releaseByCas(
  client: MemjsClient,
  key: string,
  held: MemcachedHeld,
): Promise<boolean | undefined> {
  if (!usable(held.cas)) return undefined;
  return decided(await deleteOnConnection(client, key, held.cas, held.connection));
}

/** SET carrying the holding's CAS value (keeping the new one): like `releaseByCas`. */
export async function extendByCas(
  client: MemjsClient,
  key: string,
  token: string,
  seconds: number,
  held: MemcachedHeld,
): Promise<boolean | undefined> {
  if (!usable(held.cas)) return undefined;
  const { cas, connection } = held;
  const outcome = await setOnConnection(client, key, token, seconds, cas, connection);
  if (typeof outcome === 'object') remember({ cas: outcome.cas, connection }, held);
  return decided(outcome);
}
