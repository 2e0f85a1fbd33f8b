import type { Namespace } from 'etcd3';
import {
  type AcquireResult,
  BaseLock,
  type BaseLockOptions,
  type ReleaseWaiter,
} from '../core/base-lock.js';
import { Alarm } from '../core/timing.js';
import { FALLBACK_POLL } from './redis-releases.js';
import { loadDriver } from '../core/driver.js';
import { checkConnection, checkWholeSeconds } from '../core/options.js';
import { backends, type ClientClass } from '../core/registry.js';

interface Etcd3Module {
  Etcd3: ClientClass & (new (options: Record<string, unknown>) => Namespace);
  Namespace: ClientClass;
}

/** Options of an EtcdLock: the lock options and an optional etcd3 `Etcd3` (or namespace) client. */
export type EtcdLockOptions = BaseLockOptions;

/**
 * A lock in Etcd: the key `namespace/name` holds the owner token, created by a transaction that
 * succeeds only if the key does not exist, attached to a lease of `expire` rounded **up** to whole
 * seconds (no lease when `expire` is null); released by a transaction that deletes the key only
 * if it still holds this owner's token. Etcd raises a lease TTL below its minimum (2 s with the
 * default election timeout) to that minimum.
 *
 * @example
 * import { Etcd3 } from 'etcd3';
 * const lock = new EtcdLock('deploy', { client: new Etcd3({ hosts: process.env.ETCD_HOSTS }) });
 */
export class EtcdLock extends BaseLock {
  /** Lease of each owner token this object holds (or is acquiring), to revoke on release. */
  private readonly leases = new Map<string, string>();

  constructor(name: string, options?: EtcdLockOptions) {
    super(name, options);
  }

  protected override formatKey(name: string, namespace: string | null): string {
    return namespace === null ? name : `${namespace}/${name}`;
  }

  private get etcd(): Namespace {
    return this.client as Namespace;
  }

  /** The lease TTL sent to etcd: whole seconds, rounded up. */
  protected get leaseSeconds(): number | null {
    return this.expire === null ? null : Math.ceil(this.expire / 1000);
  }

  protected override validateExpire(expire: number | null): void {
    checkWholeSeconds(
      'etcd',
      expire,
      ', and the server raises them to its minimum TTL, 2 s by default',
    );
  }

  /** The fencing token is the etcd revision that created the key: strictly increasing. */
  protected async _acquire(token: string): Promise<AcquireResult> {
    const ttl = this.leaseSeconds;
    const put = this.etcd.put(this.key).value(token);
    if (ttl !== null) put.lease(await this.grant(token, ttl));
    const { succeeded, header } = await this.etcd
      .if(this.key, 'Create', '==', 0)
      .then(put)
      .commit();
    if (!succeeded) this.revoke(token);
    return succeeded ? { fencingToken: header.revision } : false;
  }

  /** Moves the key to a new lease of `ttl` if `token` still holds it; the old lease is revoked. */
  protected override async _extend(token: string, ttl: number): Promise<boolean> {
    const previous = this.leases.get(token);
    const lease = await this.grant(token, Math.ceil(ttl / 1000));
    const { succeeded } = await this.etcd
      .if(this.key, 'Value', '==', token)
      .then(this.etcd.put(this.key).value(token).lease(lease))
      .commit();
    const stale = succeeded ? previous : lease;
    if (!succeeded && previous !== undefined) this.leases.set(token, previous);
    if (stale !== undefined)
      this.etcd.leaseClient.leaseRevoke({ ID: stale }).catch(() => undefined);
    return succeeded;
  }

  private async grant(token: string, seconds: number): Promise<string> {
    const { ID } = await this.etcd.leaseClient.leaseGrant({ TTL: seconds });
    this.leases.set(token, ID);
    return ID;
  }

  protected async _release(token: string): Promise<boolean> {
    const { succeeded } = await this.etcd
      .if(this.key, 'Value', '==', token)
      .then(this.etcd.delete().key(this.key))
      .commit();
    this.revoke(token);
    return succeeded;
  }

  /**
   * Waiters watch the lock's key: the delete of a release (or of the holder's lease running out)
   * wakes them at once, with a poll every 2 s in case the watch misses it.
   */
  protected override async openWaiter(): Promise<ReleaseWaiter> {
    const watcher = await this.etcd.watch().key(this.key).create();
    const alarm = new Alarm();
    watcher.on('delete', alarm.ring);
    watcher.on('connected', alarm.ring); // (re)connected: a delete may have been missed
    watcher.on('error', () => undefined);
    return {
      wait: (remaining, signal) => alarm.sleep(Math.min(remaining, FALLBACK_POLL), signal),
      close() {
        watcher.cancel().catch(() => undefined);
      },
    };
  }

  protected async _locked(): Promise<boolean> {
    return this.etcd.get(this.key).exists();
  }

  /** Revokes the lease of `token` in the background; an unrevoked lease just runs out. */
  private revoke(token: string): void {
    const id = this.leases.get(token);
    if (id === undefined) return;
    this.leases.delete(token);
    this.etcd.leaseClient.leaseRevoke({ ID: id }).catch(() => undefined);
  }
}

const etcd3 = () => loadDriver<Etcd3Module>('etcd', 'etcd3');

/** A client from hosts (`'http://h:2379'`, comma-separated or an array) or etcd3 options. */
function connectEtcd(connection: unknown): Namespace {
  if (connection === undefined) return new (etcd3().Etcd3)({ hosts: '127.0.0.1:2379' });
  const settings = checkConnection('etcd', connection);
  if (typeof settings === 'string') {
    return new (etcd3().Etcd3)({ hosts: settings.split(',').map((h) => h.trim()) });
  }
  if (Array.isArray(settings)) return new (etcd3().Etcd3)({ hosts: [...settings] });
  return new (etcd3().Etcd3)({ ...settings });
}

export const ETCD = backends.register({
  name: 'etcd',
  lockClass: EtcdLock,
  library: 'etcd3',
  loadClientClass: () => etcd3().Namespace,
  createClient: () => connectEtcd(undefined),
  connect: connectEtcd,
  closeClient: (client) => (client as unknown as { close(): void }).close(),
});
