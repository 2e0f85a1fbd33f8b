import cluster from 'node:cluster';

import { MemoryStore, type MemoryTicket } from '../memory/store.js';

/** The tag of this library's IPC messages (other messages on the channel are left alone). */
export const TAG = '__nestjsSherlock';

export type Operation =
  | 'acquire'
  | 'release'
  | 'extend'
  | 'locked'
  | 'listen'
  | 'leave'
  | 'inspect'
  | 'list'
  | 'forceRelease';

/** Client -> hub. */
export interface Request {
  readonly [TAG]: 'req';
  readonly id: number;
  readonly op: Operation;
  readonly key: string;
  readonly token?: string;
  readonly ttl?: number | null;
  readonly waiter?: number;
}

/** Hub -> client: a reply, or a wake-up of a waiter. */
export type Push =
  | {
      readonly [TAG]: 'res';
      readonly id: number;
      readonly result?: unknown;
      readonly error?: string;
    }
  | { readonly [TAG]: 'wake'; readonly waiter: number };

/** What the hub answers to an acquire. */
export type AcquireReply =
  | { readonly granted: true; readonly fencingToken: string }
  | { readonly granted: false; readonly holderTtl: number; readonly position?: number };

/** A process (or this process's own clients) talking to the hub. */
interface Peer {
  send(message: Push): void;
  /** Held by this peer: `key \0 token` -> [key, token]. */
  readonly held: Map<string, readonly [string, string]>;
  /** Its waiters in line: waiter id -> key and ticket. */
  readonly waiters: Map<number, { readonly key: string; readonly ticket: MemoryTicket }>;
}

/**
 * What `serve()` accepts: a `fork()`ed child (`ChildProcess`) or a cluster worker, written
 * structurally so that the declarations need no Node.js types.
 */
export interface LockHubChild {
  send(message: unknown, callback: (error: Error | null) => void): boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type
  on(event: string, listener: (...args: any[]) => void): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- EventEmitter's own listener type
  off(event: string, listener: (...args: any[]) => void): unknown;
  /** A `ChildProcess`'s: whether its IPC channel is open. */
  readonly connected?: boolean;
  /** A cluster worker's: whether its IPC channel is open. */
  isConnected?(): boolean;
}

export const isRequest = (message: unknown): message is Request =>
  typeof message === 'object' && message !== null && (message as Request)[TAG] === 'req';

const connected = (child: LockHubChild): boolean =>
  typeof child.isConnected === 'function' ? child.isConnected() : child.connected === true;

let processHub: ClusterLockHub | undefined;

/**
 * The lock table of the `cluster` backend, kept by the primary process (or a parent of `fork()`ed
 * children): it answers the acquire, release, extend and locked requests of the processes it
 * serves over their IPC channels, pushes wake-ups to their waiters (first come, first served),
 * and frees what a process held when it exits (killed or not). One host, no server.
 *
 * @example
 * import cluster from 'node:cluster';
 * if (cluster.isPrimary) {
 *   ClusterLockHub.ofProcess().serveWorkers(); // every cluster worker, now and later
 *   cluster.fork();
 * }
 */
export class ClusterLockHub {
  /** The table: a `MemoryStore` in this process (for inspection and tests). */
  readonly store = new MemoryStore();
  private servingWorkers = false;
  private readonly served = new WeakSet<object>();

  /** The hub of this process, made on first use: the one cluster clients here use. */
  static ofProcess(): ClusterLockHub {
    processHub ??= new ClusterLockHub();
    return processHub;
  }

  /**
   * Serves every cluster worker of this primary, those running and those forked later; the locks
   * of a worker that exits are freed. Idempotent.
   */
  serveWorkers(): this {
    if (this.servingWorkers) return this;
    if (!cluster.isPrimary) {
      throw new Error('ClusterLockHub.serveWorkers() is for the cluster primary');
    }
    this.servingWorkers = true;
    for (const worker of Object.values(cluster.workers ?? {})) if (worker) this.serve(worker);
    cluster.on('fork', (worker: LockHubChild) => this.serve(worker));
    return this;
  }

  /**
   * Serves one child (`fork()`ed, or a cluster worker) over its IPC channel until it exits; what
   * it held is freed when it exits, its waiters leave the line when its channel closes. Returns
   * a function that stops serving it (its locks stay until they expire).
   */
  serve(child: LockHubChild): () => void {
    if (this.served.has(child)) return () => undefined;
    this.served.add(child);
    const peer: Peer = {
      send: (message) => {
        if (!connected(child)) return;
        try {
          // A failed send (the child just died) is reported to the callback, not thrown.
          child.send(message, () => undefined);
        } catch {
          // the channel closed meanwhile: the child is going away
        }
      },
      held: new Map(),
      waiters: new Map(),
    };
    const onMessage = (message: unknown) => {
      if (isRequest(message)) peer.send(this.answer(peer, message));
    };
    const onDisconnect = () => this.dropWaiters(peer);
    const onExit = () => {
      stop();
      this.dropWaiters(peer);
      // The process is gone: nothing it held can still be in use.
      for (const [key, token] of peer.held.values()) this.store.deleteIfOwner(key, token);
      peer.held.clear();
    };
    const stop = () => {
      child.off('message', onMessage);
      child.off('disconnect', onDisconnect);
      child.off('exit', onExit);
      this.served.delete(child);
    };
    child.on('message', onMessage);
    child.on('disconnect', onDisconnect);
    child.on('exit', onExit);
    return stop;
  }

  /** @internal a peer for clients in this process. */
  localPeer(receive: (message: Push) => void): Peer {
    return { send: receive, held: new Map(), waiters: new Map() };
  }

  /** @internal answers one request. */
  answer(peer: Peer, request: Request): Push {
    const { id } = request;
    try {
      return { [TAG]: 'res', id, result: this.run(peer, request) };
    } catch (err) {
      return { [TAG]: 'res', id, error: err instanceof Error ? err.message : String(err) };
    }
  }

  private run(peer: Peer, request: Request): unknown {
    const { op, key, token = '', ttl = null, waiter } = request;
    const store = this.store;
    switch (op) {
      case 'acquire': {
        const queued = waiter === undefined ? undefined : peer.waiters.get(waiter);
        const fencingToken = store.setIfAbsent(key, token, ttl, queued?.ticket);
        if (fencingToken !== false) {
          peer.held.set(`${key}\u0000${token}`, [key, token]);
          if (queued && waiter !== undefined) {
            peer.waiters.delete(waiter);
            store.dequeue(key, queued.ticket);
          }
          return { granted: true, fencingToken } satisfies AcquireReply;
        }
        const position = queued ? Math.max(0, store.position(key, queued.ticket)) : undefined;
        return {
          granted: false,
          holderTtl: store.ttl(key),
          ...(position === undefined ? {} : { position }),
        } satisfies AcquireReply;
      }
      case 'release': {
        peer.held.delete(`${key}\u0000${token}`);
        return store.deleteIfOwner(key, token);
      }
      case 'extend':
        return typeof ttl === 'number' && store.extendIfOwner(key, token, ttl);
      case 'locked':
        return store.get(key) !== undefined;
      case 'listen': {
        if (waiter === undefined || peer.waiters.has(waiter)) return true;
        const ticket: MemoryTicket = { wake: () => peer.send({ [TAG]: 'wake', waiter }) };
        peer.waiters.set(waiter, { key, ticket });
        store.enqueue(key, ticket);
        return true;
      }
      case 'leave': {
        const queued = waiter === undefined ? undefined : peer.waiters.get(waiter);
        if (queued && waiter !== undefined) {
          peer.waiters.delete(waiter);
          store.dequeue(queued.key, queued.ticket);
        }
        return true;
      }
      // Inspection (issue 12): `list` takes a raw key prefix in `key` and a limit in `ttl`.
      case 'inspect':
        return store.inspect(key) ?? null;
      case 'forceRelease':
        return store.forceDelete(key) ?? null;
      case 'list': {
        const limit = typeof ttl === 'number' ? ttl : 1000;
        const found = [];
        for (const held of store.heldKeys()) {
          const holding = held.startsWith(key) ? store.inspect(held) : undefined;
          if (holding) found.push({ key: held, ...holding });
          if (found.length >= limit) break;
        }
        return found;
      }
      default:
        throw new Error(`unknown lock operation ${String(op)}`);
    }
  }

  private dropWaiters(peer: Peer): void {
    for (const { key, ticket } of peer.waiters.values()) this.store.dequeue(key, ticket);
    peer.waiters.clear();
  }
}
