/**
 * The few memcached binary-protocol requests the lock needs, sent through memjs's own
 * `perform()` (memjs has no CAS API, but every binary response carries the item's CAS value and
 * `perform()` sends any request). See the memcached binary protocol: 24-byte header, CAS at 16.
 */

/** The part of a memjs `Client` this backend calls. */
export interface MemjsClient {
  seq: number;
  incrSeq(): void;
  perform(
    key: string,
    request: Buffer,
    seq: number,
    callback: (err: Error | null, response: MemjsResponse | null) => void,
    retries?: number,
  ): void;
  close(): void;
  /** The server a key goes to (memjs `Client#server`), or null when none is available. */
  server?(key: string): unknown;
}

/** The part of a memjs `Server` that `sendPair` uses to await a second response. */
interface MemjsServer {
  onResponse(seq: number, callback: (response: MemjsResponse) => void): void;
  onError(seq: number, callback: (err: Error) => void): void;
  /** One deadline per request in flight: `write()` pushes one, each response takes one off. */
  requestTimeouts: number[];
  options: { timeout: number };
}

/**
 * The TCP connection memjs would write a request for `route` on now (memjs 1.x: the `Server`'s
 * `_socket`, replaced by a new object on every reconnection), or `undefined` when there is none
 * or this memjs does not expose it. Read synchronously in a response's callback, it is the
 * connection that answered (memjs drops a connection's pending callbacks when it replaces it).
 */
export function connectionOf(client: MemjsClient, route: string): object | undefined {
  const server = client.server?.(route) as { _socket?: unknown } | null | undefined;
  const socket = server?._socket;
  return typeof socket === 'object' && socket !== null ? socket : undefined;
}

function memjsServer(client: MemjsClient, route: string): MemjsServer | undefined {
  const server = client.server?.(route) as Partial<MemjsServer> | null | undefined;
  if (
    typeof server?.onResponse === 'function' &&
    typeof server.onError === 'function' &&
    Array.isArray(server.requestTimeouts) &&
    typeof server.options?.timeout === 'number'
  ) {
    return server as MemjsServer;
  }
  return undefined;
}

/** A binary-protocol response (the part this backend reads). */
export interface MemjsResponse {
  header: { status: number; cas: Buffer };
  val: Buffer;
}

const OPCODE = { get: 0x00, set: 0x01, add: 0x02, delete: 0x04, increment: 0x05 } as const;

/** Response status codes of the binary protocol. */
export const STATUS = { ok: 0x00, notFound: 0x01, exists: 0x02 } as const;

const HEADER_BYTES = 24;
const NO_CAS = Buffer.alloc(8);

function request(
  opcode: number,
  key: string,
  extras: Buffer,
  value: Buffer,
  opaque: number,
  cas: Buffer,
) {
  const keyBytes = Buffer.from(key, 'utf8');
  const buf = Buffer.alloc(HEADER_BYTES + extras.length + keyBytes.length + value.length);
  buf.writeUInt8(0x80, 0); // request magic
  buf.writeUInt8(opcode, 1);
  buf.writeUInt16BE(keyBytes.length, 2);
  buf.writeUInt8(extras.length, 4);
  buf.writeUInt32BE(extras.length + keyBytes.length + value.length, 8);
  buf.writeUInt32BE(opaque, 12);
  cas.copy(buf, 16);
  extras.copy(buf, HEADER_BYTES);
  keyBytes.copy(buf, HEADER_BYTES + extras.length);
  value.copy(buf, HEADER_BYTES + extras.length + keyBytes.length);
  return buf;
}

function send(
  client: MemjsClient,
  opcode: number,
  key: string,
  extras: Buffer,
  value: Buffer,
  cas: Buffer = NO_CAS,
  route: string = key,
): Promise<MemjsResponse> {
  client.incrSeq();
  const seq = client.seq;
  const buf = request(opcode, key, extras, value, seq, cas);
  return new Promise((resolve, reject) => {
    // memjs picks the server by the key it is given (`route`), not by the request's key.
    client.perform(route, buf, seq, (err, response) => {
      if (err || !response) reject(err ?? new Error('memcached: no response'));
      else resolve(response);
    });
  });
}

const EMPTY = Buffer.alloc(0);

/** A response, and the connection it came on (see `connectionOf`). */
export interface Answered {
  readonly response: MemjsResponse;
  readonly connection: object | undefined;
}

/**
 * Sends two requests to the server of `route` in ONE socket write (a second write costs a second
 * trip through the TCP stack, even an empty one), each answered on its own. memjs registers a
 * callback per sequence number: the first `perform()` writes both requests; the second one's
 * callbacks are registered on the server directly, with its request deadline (as memjs's own
 * `write()` would). A memjs without that surface gets a second, empty `perform()` instead.
 * The first answer comes with the connection it came on.
 */
function sendPair(
  client: MemjsClient,
  route: string,
  first: (opaque: number) => Buffer,
  second: (opaque: number) => Buffer,
): [Promise<Answered>, Promise<MemjsResponse>] {
  client.incrSeq();
  const seq1 = client.seq;
  client.incrSeq();
  const seq2 = client.seq;
  const both = Buffer.concat([first(seq1), second(seq2)]);
  const firstAnswer = new Promise<Answered>((resolve, reject) => {
    client.perform(route, both, seq1, (err, response) => {
      if (err || !response) reject(err ?? new Error('memcached: no response'));
      else resolve({ response, connection: connectionOf(client, route) });
    });
  });
  const server = memjsServer(client, route);
  if (!server) {
    const secondAnswer = new Promise<MemjsResponse>((resolve, reject) => {
      client.perform(route, EMPTY, seq2, (err, response) => {
        if (err || !response) reject(err ?? new Error('memcached: no response'));
        else resolve(response);
      });
    });
    return [firstAnswer, secondAnswer];
  }
  const secondAnswer = new Promise<MemjsResponse>((resolve, reject) => {
    server.onResponse(seq2, resolve);
    server.onError(seq2, reject);
    const [seconds, nanos] = process.hrtime();
    const timestamp = seconds * 1000 + Math.round(nanos / 1e6);
    server.requestTimeouts.push(timestamp + Math.round(server.options.timeout * 1000));
  });
  return [firstAnswer, secondAnswer];
}

/**
 * Sends one request for `key` on `connection` and on no other: if memjs's connection to `key`'s
 * server is no longer that object (it reconnected, maybe to a restarted server), nothing is sent
 * and `null` is returned. No retry either (memjs would retry on a new connection). The check and
 * the write happen in the same synchronous step, so nothing can reconnect in between.
 */
function sendOnConnection(
  client: MemjsClient,
  connection: object,
  opcode: number,
  key: string,
  extras: Buffer,
  value: Buffer,
  cas: Buffer,
): Promise<MemjsResponse> | null {
  if (connectionOf(client, key) !== connection) return null;
  client.incrSeq();
  const seq = client.seq;
  const buf = request(opcode, key, extras, value, seq, cas);
  return new Promise((resolve, reject) => {
    client.perform(
      key,
      buf,
      seq,
      (err, response) => {
        if (err || !response) reject(err ?? new Error('memcached: no response'));
        else resolve(response);
      },
      1,
    );
  });
}

function unexpected(op: string, status: number): Error {
  return new Error(`memcached ${op} failed with status 0x${status.toString(16).padStart(4, '0')}`);
}

/** ADD: stores `value` only if `key` is absent; `expiration` in whole seconds (0 = never). */
export async function add(client: MemjsClient, key: string, value: string, expiration: number) {
  const extras = Buffer.alloc(8); // flags (4 bytes, 0) + expiration (4 bytes)
  extras.writeUInt32BE(expiration, 4);
  const { header } = await send(client, OPCODE.add, key, extras, Buffer.from(value, 'utf8'));
  if (header.status === STATUS.ok) return true;
  if (header.status === STATUS.exists) return false;
  throw unexpected('add', header.status);
}

/** GET keeping the CAS value: `null` when the key is absent. */
export async function gets(client: MemjsClient, key: string) {
  const { header, val } = await send(client, OPCODE.get, key, Buffer.alloc(0), Buffer.alloc(0));
  if (header.status === STATUS.notFound) return null;
  if (header.status !== STATUS.ok) throw unexpected('get', header.status);
  return { value: val.toString('utf8'), cas: Buffer.from(header.cas) };
}

/** DELETE carrying `cas`: deletes only if the item was not changed since it was read. */
export async function deleteIfUnchanged(client: MemjsClient, key: string, cas: Buffer) {
  const { header } = await send(client, OPCODE.delete, key, Buffer.alloc(0), Buffer.alloc(0), cas);
  if (header.status === STATUS.ok) return true;
  if (header.status === STATUS.notFound || header.status === STATUS.exists) return false;
  throw unexpected('delete', header.status);
}

/** What a store left at the server: the item's new CAS value, and the connection it came on. */
export interface Stored {
  readonly cas: Buffer;
  readonly connection: object | undefined;
}

/**
 * SET carrying `cas`: replaces the item only if it was not changed since it was read. Resolves
 * the new item's CAS value (and connection), or `null` when the item changed or is gone.
 */
export async function setIfUnchanged(
  client: MemjsClient,
  key: string,
  value: string,
  expiration: number,
  cas: Buffer,
): Promise<Stored | null> {
  const extras = Buffer.alloc(8); // flags (4 bytes, 0) + expiration (4 bytes)
  extras.writeUInt32BE(expiration, 4);
  const { header } = await send(client, OPCODE.set, key, extras, Buffer.from(value, 'utf8'), cas);
  if (header.status === STATUS.ok) {
    return { cas: Buffer.from(header.cas), connection: connectionOf(client, key) };
  }
  if (header.status === STATUS.notFound || header.status === STATUS.exists) return null;
  throw unexpected('set', header.status);
}

/**
 * What a request carrying the CAS value of the holder's own item found: `'done'` (deleted or
 * replaced), `'gone'` (no item: nobody holds the lock), or `'unsure'` (the item has another CAS
 * value, or the connection it was remembered on is gone): the caller reads the item to decide.
 */
export type CasOutcome = { readonly done: true; readonly cas: Buffer } | 'gone' | 'unsure';

function casOutcome(op: string, response: MemjsResponse): CasOutcome {
  const { status, cas } = response.header;
  if (status === STATUS.ok) return { done: true, cas: Buffer.from(cas) };
  if (status === STATUS.notFound) return 'gone';
  if (status === STATUS.exists) return 'unsure';
  throw unexpected(op, status);
}

/**
 * DELETE carrying `cas`, sent only on `connection` (the one `cas` was learnt on): one round trip,
 * no read first. See `CasOutcome`.
 */
export async function deleteOnConnection(
  client: MemjsClient,
  key: string,
  cas: Buffer,
  connection: object,
): Promise<CasOutcome> {
  const sending = sendOnConnection(client, connection, OPCODE.delete, key, EMPTY, EMPTY, cas);
  return sending ? casOutcome('delete', await sending) : 'unsure';
}

/**
 * SET carrying `cas`, sent only on `connection` (the one `cas` was learnt on): one round trip,
 * no read first; when done, the item's new CAS value. See `CasOutcome`.
 */
export async function setOnConnection(
  client: MemjsClient,
  key: string,
  value: string,
  expiration: number,
  cas: Buffer,
  connection: object,
): Promise<CasOutcome> {
  const extras = Buffer.alloc(8); // flags (4 bytes, 0) + expiration (4 bytes)
  extras.writeUInt32BE(expiration, 4);
  const payload = Buffer.from(value, 'utf8');
  const sending = sendOnConnection(client, connection, OPCODE.set, key, extras, payload, cas);
  return sending ? casOutcome('set', await sending) : 'unsure';
}

/**
 * INCREMENT by 1, creating the counter at `initial` if absent (it never expires, but memcached
 * may evict it): resolves the new value. Sent to the server of `route` (default: `key`'s).
 */
export async function increment(
  client: MemjsClient,
  key: string,
  initial: bigint,
  route: string = key,
): Promise<bigint> {
  const extras = Buffer.alloc(20); // delta (8) + initial (8) + expiration (4, 0 = never)
  extras.writeBigUInt64BE(1n, 0);
  extras.writeBigUInt64BE(initial, 8);
  const empty = Buffer.alloc(0);
  const { header, val } = await send(client, OPCODE.increment, key, extras, empty, NO_CAS, route);
  if (header.status !== STATUS.ok || val.length !== 8) throw unexpected('increment', header.status);
  return val.readBigUInt64BE(0);
}

/**
 * ADD of `key`, and INCREMENT of the counter `counterKey` (created at `initial`), sent together
 * in one write to `key`'s server: resolves what the add stored (its CAS value and the connection
 * it came on) or `null` when the key exists, and (a second promise) the counter's new value. The
 * server runs them in that order.
 */
export function addAndIncrement(
  client: MemjsClient,
  key: string,
  value: string,
  expiration: number,
  counterKey: string,
  initial: bigint,
): [Promise<Stored | null>, Promise<bigint>] {
  const addExtras = Buffer.alloc(8); // flags (4 bytes, 0) + expiration (4 bytes)
  addExtras.writeUInt32BE(expiration, 4);
  const incrExtras = Buffer.alloc(20); // delta (8) + initial (8) + expiration (4, 0 = never)
  incrExtras.writeBigUInt64BE(1n, 0);
  incrExtras.writeBigUInt64BE(initial, 8);
  const [adding, counting] = sendPair(
    client,
    key,
    (opaque) => request(OPCODE.add, key, addExtras, Buffer.from(value, 'utf8'), opaque, NO_CAS),
    (opaque) => request(OPCODE.increment, counterKey, incrExtras, EMPTY, opaque, NO_CAS),
  );
  return [
    adding.then(({ response, connection }) => {
      const { header } = response;
      if (header.status === STATUS.ok) return { cas: Buffer.from(header.cas), connection };
      if (header.status === STATUS.exists) return null;
      throw unexpected('add', header.status);
    }),
    counting.then(({ header, val }) => {
      if (header.status !== STATUS.ok || val.length !== 8) {
        throw unexpected('increment', header.status);
      }
      return val.readBigUInt64BE(0);
    }),
  ];
}
