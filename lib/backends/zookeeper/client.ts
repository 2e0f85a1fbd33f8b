/**
 * The ZooKeeper client of the zookeeper backend: one ZooKeeper session at a time, over
 * `node-zookeeper-client` (loaded lazily: an optional peer dependency). A session that expires
 * (the server forgot it: its ephemeral nodes, so its locks, are gone) is replaced by a new one,
 * so a long-running process keeps working; the locks it held report themselves lost (their
 * release and extend find their nodes gone).
 */
import { loadDriver } from '../../core/driver.js';

/**
 * A ZooKeeper node's stat, as node-zookeeper-client gives it (longs as 8-byte buffers). Typed as
 * `Uint8Array` (a `Buffer` is one) so that the published types do not need `@types/node`.
 */
export interface ZkStat {
  readonly czxid: Uint8Array;
  readonly mtime: Uint8Array;
  readonly version: number;
}

type Callback<T> = (error: Error | null, result: T) => void;

/** The part of a node-zookeeper-client `Client` this backend uses. */
export interface RawZkClient {
  connect(): void;
  close(): void;
  on(event: 'state', listener: (state: { readonly name: string }) => void): unknown;
  getSessionId(): Uint8Array;
  create(path: string, data: Uint8Array, mode: number, callback: Callback<string>): void;
  remove(path: string, version: number, callback: Callback<void>): void;
  setData(path: string, data: Uint8Array, version: number, callback: Callback<ZkStat>): void;
  getData(
    path: string,
    callback: (error: Error | null, data: Uint8Array, stat: ZkStat) => void,
  ): void;
  getChildren(path: string, callback: Callback<string[]>): void;
  exists(path: string, callback: Callback<ZkStat | null>): void;
  exists(
    path: string,
    watcher: (event: { readonly name: string }) => void,
    callback: Callback<ZkStat | null>,
  ): void;
  mkdirp(path: string, callback: Callback<string>): void;
  transaction(): ZkTransaction;
}

/** A node-zookeeper-client multi-op transaction (the ops this backend uses). */
export interface ZkTransaction {
  create(path: string, data: Uint8Array, mode: number): ZkTransaction;
  setData(path: string, data: Uint8Array, version: number): ZkTransaction;
  remove(path: string, version: number): ZkTransaction;
  commit(callback: Callback<readonly ZkOpResult[]>): void;
}

/** One op's result in a committed transaction: a create's path, a setData's stat. */
export interface ZkOpResult {
  readonly path?: string;
  readonly stat?: ZkStat & {
    readonly mzxid?: Uint8Array;
    readonly numChildren?: number;
  };
}

interface ZkModule {
  createClient(
    connectString: string,
    options: { sessionTimeout?: number; spinDelay?: number; retries?: number },
  ): RawZkClient;
  CreateMode: { PERSISTENT: number; EPHEMERAL_SEQUENTIAL: number };
}

/** The internals of node-zookeeper-client's connection manager that stopping it needs. */
interface ConnectionManagerInternals {
  state: number;
  socket?: { destroy(): void };
  findNextServer: () => void;
  onSocketConnected: () => void;
}

/** Stops a client that is not connected from trying again (its state CLOSING: no retry). */
function stopReconnecting(raw: RawZkClient): void {
  const manager = (raw as unknown as { connectionManager?: ConnectionManagerInternals })
    .connectionManager;
  if (manager === undefined) return;
  manager.findNextServer = () => undefined;
  manager.onSocketConnected = function (this: ConnectionManagerInternals) {
    this.socket?.destroy();
  };
  manager.state = -1; // CLOSING: the socket's close ends it (CLOSED) without a retry
  manager.socket?.destroy();
}

const raws = new WeakMap<ZooKeeperClient, () => RawZkClient>();

/** The current session's driver client of `zk`. */
export function rawOf(zk: ZooKeeperClient): RawZkClient {
  const raw = raws.get(zk);
  if (raw === undefined) throw new TypeError('not a ZooKeeperClient');
  return raw();
}

export const zookeeperDriver = () => loadDriver<ZkModule>('zookeeper', 'node-zookeeper-client');

/** ZooKeeper's error codes this backend tells apart. */
export const ZK = {
  CONNECTION_LOSS: -4,
  NO_NODE: -101,
  NO_AUTH: -102,
  BAD_VERSION: -103,
  NODE_EXISTS: -110,
  NOT_EMPTY: -111,
} as const;

/** The ZooKeeper error code of a driver error (undefined: not a ZooKeeper error). */
export const codeOf = (error: unknown): number | undefined => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
};

/** Options of a ZooKeeperClient (node-zookeeper-client's). */
export interface ZooKeeperClientOptions {
  /**
   * The session timeout asked of the server, in ms (default 10 000; the server bounds it to
   * between 2 and 20 of its ticks). How long the locks of a holder that died stay held.
   */
  readonly sessionTimeout?: number;
  /** The delay between attempts to reach the next server, in ms (default 1 000). */
  readonly spinDelay?: number;
}

/** The default session timeout: a dead holder's locks are freed within about this long. */
export const DEFAULT_SESSION_TIMEOUT = 10_000;

/**
 * A ZooKeeper session for the zookeeper backend: `connectString` is node-zookeeper-client's,
 * `host:port[,host:port...][/chroot]`. It connects at once and reconnects by itself; a request
 * made while it is not connected waits for the connection (the lock's `operationTimeout` bounds
 * it) rather than being queued in the driver, so that no create is sent after the caller gave up.
 *
 * @example
 * const client = new ZooKeeperClient('127.0.0.1:2181', { sessionTimeout: 10_000 });
 * const lock = new ZooKeeperLock('deploy', { client });
 */
export class ZooKeeperClient {
  readonly connectString: string;
  readonly options: Readonly<ZooKeeperClientOptions>;
  #raw: RawZkClient;
  #connected = false;
  #closed = false;
  #ready!: Promise<void>;
  #resolveReady!: () => void;
  /** Work to do once connected again (removing nodes whose removal failed with the connection). */
  #onConnect: (() => void)[] = [];
  /** How many sessions this client has had (a new one after each expiry). */
  sessions = 0;

  constructor(connectString = '127.0.0.1:2181', options: ZooKeeperClientOptions = {}) {
    if (typeof connectString !== 'string' || connectString.trim().length === 0) {
      throw new TypeError(
        `Invalid ZooKeeper connect string ${JSON.stringify(connectString)}; expected host:port[,host:port...][/chroot]`,
      );
    }
    this.connectString = connectString.trim();
    this.options = { ...options };
    this.#unready();
    this.#raw = this.#open();
    raws.set(this, () => this.#raw);
  }

  /** The current session's node-zookeeper-client `Client` (typed by that library, if at all). */
  get raw(): object {
    return this.#raw;
  }

  /** Whether the client is connected to a server now. */
  get connected(): boolean {
    return this.#connected;
  }

  /** The current session's id (hex), or '' before the first connection. */
  get sessionId(): string {
    return this.#connected ? Buffer.from(this.#raw.getSessionId()).toString('hex') : '';
  }

  /** Resolves when connected (at once if it is); never while closed. */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('the ZooKeeper client is closed'));
    return this.#ready;
  }

  /** Runs `task` once connected (at once if connected now). */
  whenConnected(task: () => void): void {
    if (this.#closed) return;
    if (this.#connected) task();
    else this.#onConnect.push(task);
  }

  /** Closes the session: its ephemeral nodes (the locks it holds) go at once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const connected = this.#connected;
    this.#connected = false;
    if (connected) {
      this.#raw.close(); // a proper end of the session: its ephemeral nodes go at once
      return;
    }
    // Not connected: node-zookeeper-client's close() would write its close request on a socket
    // still connecting (or throw with none), and misread the replies. Stop it from reconnecting
    // instead; the server ends the session at its timeout.
    stopReconnecting(this.#raw);
  }

  #unready(): void {
    this.#ready = new Promise((resolve) => (this.#resolveReady = resolve));
    // Nobody may be waiting: never an unhandled rejection (it never rejects anyway).
    this.#ready.catch(() => undefined);
  }

  #open(): RawZkClient {
    const raw = zookeeperDriver().createClient(this.connectString, {
      sessionTimeout: this.options.sessionTimeout ?? DEFAULT_SESSION_TIMEOUT,
      spinDelay: this.options.spinDelay ?? 1_000,
      retries: 0,
    });
    raw.on('state', (state) => this.#onState(raw, state.name));
    raw.connect();
    return raw;
  }

  #onState(raw: RawZkClient, state: string): void {
    if (raw !== this.#raw || this.#closed) return;
    if (state === 'SYNC_CONNECTED' || state === 'CONNECTED_READ_ONLY') {
      if (this.#connected) return;
      this.#connected = true;
      this.sessions += raw === this.#counted ? 0 : 1;
      this.#counted = raw;
      this.#resolveReady();
      for (const task of this.#onConnect.splice(0)) task();
    } else if (state === 'DISCONNECTED') {
      if (this.#connected) this.#unready();
      this.#connected = false;
    } else if (state === 'EXPIRED' || state === 'AUTH_FAILED') {
      // The server forgot this session: its ephemeral nodes are gone. Start a new one.
      if (this.#connected) this.#unready();
      this.#connected = false;
      raw.close();
      this.#raw = this.#open();
    }
  }

  #counted: RawZkClient | undefined;
}
