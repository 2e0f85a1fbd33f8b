import cluster from 'node:cluster';

import {
  type AcquireReply,
  ClusterLockHub,
  type Operation,
  type Push,
  type Request,
  TAG,
} from './hub.js';

/** How a client reaches its hub. */
interface Transport {
  /** Sends a request; `failed` is called if it could not be sent. */
  send(request: Request, failed: (error: Error) => void): void;
  /** Starts (true) or stops (false) receiving the hub's messages. */
  receive(on: boolean): void;
}

/**
 * Request and waiter ids, unique in this process: every client of a process shares its IPC
 * channel (and so sees every reply and wake-up sent to the process) and its peer at the hub.
 */
let nextId = 1;

const isPush = (message: unknown): message is Push =>
  typeof message === 'object' &&
  message !== null &&
  ((message as Push)[TAG] === 'res' || (message as Push)[TAG] === 'wake');

/**
 * The client of the `cluster` backend: talks to a `ClusterLockHub`, either the parent's over this
 * process's IPC channel (a cluster worker, or a child made with `fork()`), or this process's own
 * hub (the primary). Cheap: one per process is enough.
 *
 * @example
 * // in a cluster worker (the primary called ClusterLockHub.ofProcess().serveWorkers()):
 * const locks = new LockManager({ backend: 'cluster' });
 * // in a fork()ed child of a parent that called hub.serve(child):
 * const locks = new LockManager({ backend: 'cluster', client: ClusterLockClient.toParent() });
 */
export class ClusterLockClient {
  private readonly pending = new Map<
    number,
    { resolve(value: unknown): void; reject(error: Error): void }
  >();
  private readonly wakes = new Map<number, () => void>();
  private receiving = false;
  private closed = false;
  private readonly link: Transport;

  /** @internal use `toParent()`, `local()` or `hub.client()`. */
  constructor(transport: (client: ClusterLockClient) => Transport) {
    this.link = transport(this);
  }

  /** A client of this process's own hub (`ClusterLockHub.ofProcess()`): the primary's. */
  static local(hub: ClusterLockHub = ClusterLockHub.ofProcess()): ClusterLockClient {
    return new ClusterLockClient((client) => {
      const peer = hub.localPeer((message) => queueMicrotask(() => client.receive(message)));
      return {
        send: (request) => peer.send(hub.answer(peer, request)),
        receive: () => undefined,
      };
    });
  }

  /**
   * A client of the parent's hub over this process's IPC channel (a cluster worker, or a child
   * made with `fork()` whose parent calls `hub.serve(child)`). Throws without an IPC channel.
   */
  static toParent(): ClusterLockClient {
    const send = process.send?.bind(process);
    if (!send) {
      throw new Error(
        'ClusterLockClient.toParent(): this process has no IPC channel to a parent (start it with cluster.fork() or child_process.fork())',
      );
    }
    return new ClusterLockClient((client) => {
      const onMessage = (message: unknown) => {
        if (isPush(message)) client.receive(message);
      };
      const onDisconnect = () => client.failAll(new Error('the IPC channel to the primary closed'));
      return {
        send(request, failed) {
          if (!process.connected) {
            failed(new Error('the IPC channel to the primary is closed'));
            return;
          }
          send(request, undefined, undefined, (error: Error | null) => {
            if (error) failed(error);
          });
        },
        // Listening keeps the channel (and so the process) alive: only while something waits.
        receive(on) {
          if (on) {
            process.on('message', onMessage);
            process.on('disconnect', onDisconnect);
          } else {
            process.off('message', onMessage);
            process.off('disconnect', onDisconnect);
          }
        },
      };
    });
  }

  /** The default client: to the primary in a cluster worker, else to this process's hub. */
  static default(): ClusterLockClient {
    return cluster.isWorker ? ClusterLockClient.toParent() : ClusterLockClient.local();
  }

  /** Stops this client: requests in flight reject, and it sends no more. */
  close(): void {
    this.closed = true;
    this.failAll(new Error('the cluster lock client was closed'));
    this.wakes.clear();
    this.update();
  }

  private update(): void {
    const busy = this.pending.size > 0 || this.wakes.size > 0;
    if (busy !== this.receiving) {
      this.receiving = busy;
      this.link.receive(busy);
    }
  }

  private failAll(error: Error): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const { reject } of pending) reject(error);
    this.update();
  }

  private receive(message: Push): void {
    if (message[TAG] === 'wake') {
      this.wakes.get(message.waiter)?.();
      return;
    }
    const pending = this.pending.get(message.id);
    if (!pending) return;
    this.pending.delete(message.id);
    this.update();
    if (message.error !== undefined) pending.reject(new Error(message.error));
    else pending.resolve(message.result);
  }

  /** @internal one request to the hub. */
  request(
    op: Operation,
    body: { key: string; token?: string; ttl?: number | null; waiter?: number },
  ): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error('the cluster lock client was closed'));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.update();
      const failed = (error: Error) => {
        if (this.pending.delete(id)) {
          this.update();
          reject(error);
        }
      };
      const request: Request = { [TAG]: 'req', id, op, ...body };
      try {
        this.link.send(request, failed);
      } catch (err) {
        failed(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** @internal */
  acquire(key: string, token: string, ttl: number | null, waiter?: number): Promise<AcquireReply> {
    return this.request('acquire', {
      key,
      token,
      ttl,
      ...(waiter === undefined ? {} : { waiter }),
    }) as Promise<AcquireReply>;
  }

  /** @internal a new waiter id, woken by `wake`. */
  addWaiter(wake: () => void): number {
    const id = nextId++;
    this.wakes.set(id, wake);
    this.update();
    return id;
  }

  /** @internal */
  removeWaiter(id: number): void {
    this.wakes.delete(id);
    this.update();
  }
}
