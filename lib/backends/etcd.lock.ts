import type { Namespace, Watcher } from 'etcd3';
import {
  type AcquireResult,
  BaseLock,
  type BaseLockOptions,
  type ReleaseWaiter,
} from '../core/base-lock.js';
import { Alarm, now } from '../core/timing.js';
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

/** The lease of a waiting entry when the lock has no expiry (`expire: null`), kept alive. */
const WAITER_LEASE_SECONDS = 10;

/** One entry of a lock's line on the server (see EtcdLock). */
interface Entry {
  /** The entry's key, under the lock's prefix (relative to the client's namespace). */
  readonly key: string;
  /** Its value: the owner token of the attempt that made it (compared on release and extend). */
  readonly value: string;
  /** Its create revision: its place in line, and the fencing token once it holds the lock. */
  readonly revision: string;
  /** Its lease, if any, and the lease's TTL in seconds. */
  lease: string | undefined;
  seconds: number | null;
  /** When its lease was last granted or kept alive (before the request was sent). */
  refreshedAt: number;
}

/**
 * A lock in Etcd, with the queue recipe of etcd's own `concurrency.Mutex`: each acquirer puts an
 * entry `key` + `\u001f` + its owner token, attached to a lease of `expire` rounded **up** to whole
 * seconds; the entry with the smallest create revision holds the lock, and that revision is its
 * fencing token. A blocking acquire keeps its entry (its place in line) and watches only the
 * entry right ahead of it: each release (a delete, or a lease running out) wakes one waiter,
 * first come first served. A non-blocking acquire that is not first in line deletes its entry.
 * Etcd raises a lease TTL below its minimum (2 s with the default election timeout) to that
 * minimum.
 *
 * @example
 * import { Etcd3 } from 'etcd3';
 * const lock = new EtcdLock('deploy', { client: new Etcd3({ hosts: process.env.ETCD_HOSTS }) });
 */
export class EtcdLock extends BaseLock {
  /** The entry of each owner token this object holds, to delete on release. */
  private readonly held = new Map<string, Entry>();
  /** The entry of the blocking acquire in progress, waiting in line. */
  private waiting: Entry | undefined;
  /** The lease of this object's last entry, alive until its TTL runs out: reused if alive. */
  private spare: { id: string; seconds: number } | undefined;
  /** The entry right ahead of `waiting`, as of the last attempt, and how many are ahead. */
  private ahead: { key: string; fromRevision: string; count: number } | undefined;

  constructor(name: string, options?: EtcdLockOptions) {
    super(name, options);
  }

  protected override formatKey(name: string, namespace: string | null): string {
    return namespace === null ? name : `${namespace}/${name}`;
  }

  /**
   * The prefix of this lock's entries: the key and a control character, which no lock name may
   * contain, so no other lock's entries can share it.
   */
  get entryPrefix(): string {
    return `${this.key}\u001f`;
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

  protected async _acquire(token: string): Promise<AcquireResult> {
    let entry = this.waiting;
    if (entry === undefined) {
      const made = await this.enter(token);
      if (made.first) return this.granted(token, made.entry);
      // Not first: a blocking acquire keeps its place in line; anything else leaves.
      if (!this.blockingAcquire || this.waiting !== undefined) {
        await this.remove(made.entry);
        return false;
      }
      this.waiting = entry = made.entry;
    } else if (
      now() - entry.refreshedAt >= this.refreshEvery(entry) &&
      !(await this.keepAlive(entry))
    ) {
      return this.lostPlace();
    }
    const ahead = await this.etcd
      .getAll()
      .prefix(this.entryPrefix)
      .maxCreateRevision(String(BigInt(entry.revision) - 1n))
      .sort('Create', 'Descend')
      .limit(1)
      .exec();
    const predecessor = ahead.kvs[0];
    if (predecessor === undefined) {
      // Nobody ahead: the lock is ours, and it expires a TTL after the lease's last renewal.
      // Renew it now unless that was only a moment ago (then the holding counts from then).
      if (
        now() - entry.refreshedAt > this.refreshEvery(entry) / 30 &&
        !(await this.keepAlive(entry))
      )
        return this.lostPlace();
      this.waiting = undefined;
      this.ahead = undefined;
      return this.granted(token, entry);
    }
    this.ahead = {
      key: this.entryPrefix + predecessor.value.toString(),
      fromRevision: String(BigInt(ahead.header.revision) + 1n),
      count: Number(ahead.count),
    };
    return false;
  }

  /** Puts a new entry (with its lease) and tells whether it is first in line. */
  private async enter(token: string): Promise<{ entry: Entry; first: boolean }> {
    const seconds = this.leaseSeconds ?? (this.blockingAcquire ? WAITER_LEASE_SECONDS : null);
    const key = this.entryPrefix + token;
    const refreshedAt = now();
    const lease = seconds === null ? undefined : await this.leaseOf(seconds);
    const put = this.etcd.put(key).value(token);
    if (lease !== undefined) put.lease(lease);
    const { header, responses } = await this.etcd
      .if(key, 'Create', '==', 0)
      .then(put, this.etcd.getAll().prefix(this.entryPrefix).sort('Create', 'Ascend').limit(1))
      .commit();
    const entry: Entry = {
      key,
      value: token,
      revision: header.revision,
      lease,
      seconds,
      refreshedAt,
    };
    const first = responses[1]?.response_range?.kvs[0]?.create_revision === header.revision;
    return { entry, first };
  }

  private async granted(token: string, entry: Entry): Promise<AcquireResult> {
    if (this.expire === null && entry.lease !== undefined) {
      // It waited with a lease (so that a dead waiter could not block the line for ever): the
      // holder of a lock without expiry keeps it without one.
      const { succeeded } = await this.etcd
        .if(entry.key, 'Value', '==', entry.value)
        .then(this.etcd.put(entry.key).value(entry.value))
        .commit();
      if (!succeeded) return this.lostPlace();
      this.revokeLease(entry.lease);
      entry.lease = undefined;
      entry.seconds = null;
    }
    this.held.set(token, entry);
    return { fencingToken: entry.revision, since: entry.refreshedAt };
  }

  /** The waiting entry is gone (its lease ran out): queue again from the back. */
  private lostPlace(): false {
    const entry = this.waiting;
    this.waiting = undefined;
    this.ahead = undefined;
    if (entry) this.leave(entry);
    return false;
  }

  /** How often a waiting entry's lease is kept alive: a third of its TTL. */
  private refreshEvery(entry: Entry): number {
    return entry.seconds === null ? Infinity : (entry.seconds * 1000) / 3;
  }

  /** One keep-alive of the entry's lease; false if the lease is gone. */
  private async keepAlive(entry: Entry): Promise<boolean> {
    if (entry.lease === undefined) return true;
    const sentAt = now();
    if (!(await this.keepLeaseAlive(entry.lease))) return false;
    entry.refreshedAt = sentAt;
    return true;
  }

  /** One keep-alive (which the leader answers without a raft write); false if the lease is gone. */
  private async keepLeaseAlive(id: string): Promise<boolean> {
    const stream = await this.etcd.leaseClient.leaseKeepAlive();
    try {
      const reply = await new Promise<{ TTL: string }>((resolve, reject) => {
        stream.on('data', resolve);
        stream.on('error', reject);
        stream.write({ ID: id });
      });
      return Number(reply.TTL) > 0;
    } finally {
      stream.on('error', () => undefined);
      stream.end();
    }
  }

  /**
   * A lease of `seconds` for a new entry: the one this object's last entry had, kept alive, if
   * it has the same TTL and is still alive (saving a grant and a revoke, two raft writes, per
   * acquire), else a new one.
   */
  private async leaseOf(seconds: number): Promise<string> {
    const spare = this.spare;
    this.spare = undefined;
    if (spare?.seconds === seconds && (await this.keepLeaseAlive(spare.id))) return spare.id;
    this.revokeLease(spare?.id);
    return (await this.etcd.leaseClient.leaseGrant({ TTL: seconds })).ID;
  }

  /**
   * Extends to `ttl` if `token` still holds the lock: with the lease's own TTL, a keep-alive of the
   * lease (then a read that the entry is still there on it); with another, the entry moves to a
   * new lease and the old one is revoked.
   */
  protected override async _extend(token: string, ttl: number): Promise<boolean> {
    const entry = this.held.get(token);
    if (entry === undefined) return false;
    const seconds = Math.ceil(ttl / 1000);
    if (entry.lease !== undefined && seconds === entry.seconds) {
      if (!(await this.keepLeaseAlive(entry.lease))) return false;
      const kv = (await this.etcd.get(entry.key).exec()).kvs[0];
      return kv?.value.toString() === entry.value && kv.lease === entry.lease;
    }
    const { ID: lease } = await this.etcd.leaseClient.leaseGrant({ TTL: seconds });
    const { succeeded } = await this.etcd
      .if(entry.key, 'Value', '==', entry.value)
      .then(this.etcd.put(entry.key).value(entry.value).lease(lease))
      .commit();
    this.revokeLease(succeeded ? entry.lease : lease);
    if (succeeded) {
      entry.lease = lease;
      entry.seconds = seconds;
    }
    return succeeded;
  }

  protected async _release(token: string): Promise<boolean> {
    const entry = this.held.get(token);
    // Not held: an attempt given up on, whose entry may still have been put (undo).
    if (entry === undefined) {
      const key = this.entryPrefix + token;
      await this.remove({ key, value: token, lease: undefined, seconds: null });
      return false;
    }
    const succeeded = await this.remove(entry, true);
    this.held.delete(token);
    return succeeded;
  }

  /**
   * A waiter watches the entry right ahead of it, from the revision it last read, so no delete
   * in between is missed: its delete (a release, a waiter giving up, a lease running out) wakes
   * it, and it looks again. A poll every 2 s (less often further back in line) covers a watch
   * that fails; the waiting entry's lease is kept alive at a third of its TTL.
   */
  protected override async openWaiter(): Promise<ReleaseWaiter> {
    const alarm = new Alarm();
    let watched: { key: string; watcher: Watcher } | undefined;
    const unwatch = () => {
      watched?.watcher.cancel().catch(() => undefined);
      watched = undefined;
    };
    // Listeners go on before the watch connects: a delete it replays from `fromRevision` can come
    // in the same message as its confirmation. No need to wait for it to connect either.
    const watch = () => {
      const ahead = this.ahead;
      if (ahead === undefined || watched?.key === ahead.key) return;
      unwatch();
      const watcher = this.etcd.watch().key(ahead.key).startRevision(ahead.fromRevision).watcher();
      watcher.on('delete', alarm.ring);
      watcher.on('error', () => undefined);
      watched = { key: ahead.key, watcher };
    };
    return {
      wait: async (remaining, signal) => {
        watch();
        const entry = this.waiting;
        const rank = Math.max(0, (this.ahead?.count ?? 1) - 1);
        const poll = FALLBACK_POLL * Math.min(1 + rank, 5);
        const refresh =
          entry === undefined ? Infinity : entry.refreshedAt + this.refreshEvery(entry) - now();
        await alarm.sleep(Math.max(0, Math.min(remaining, poll, refresh)), signal);
      },
      close: unwatch,
      // The watch starts from the revision the failed attempt read: no release is missed.
      coversLastAttempt: this.ahead !== undefined,
    };
  }

  /** An acquire that ends without the lock leaves the line. */
  protected override acquireEnded(): void {
    const entry = this.waiting;
    this.waiting = undefined;
    this.ahead = undefined;
    if (entry) this.leave(entry);
  }

  protected async _locked(): Promise<boolean> {
    return (await this.etcd.getAll().prefix(this.entryPrefix).count()) > 0;
  }

  /**
   * Deletes an entry if it still holds its value. Its lease is kept for this object's next
   * entry if `keep` (and the delete succeeded), else revoked in the background.
   */
  private async remove(
    entry: Pick<Entry, 'key' | 'value' | 'lease' | 'seconds'>,
    keep = false,
  ): Promise<boolean> {
    const { succeeded } = await this.etcd
      .if(entry.key, 'Value', '==', entry.value)
      .then(this.etcd.delete().key(entry.key))
      .commit();
    if (keep && succeeded && entry.lease !== undefined && entry.seconds !== null) {
      this.revokeLease(this.spare?.id);
      this.spare = { id: entry.lease, seconds: entry.seconds };
    } else {
      this.revokeLease(entry.lease);
    }
    return succeeded;
  }

  /** Removes a waiting entry in the background (its lease runs out if this fails). */
  private leave(entry: Entry): void {
    this.remove(entry, true).catch(() => this.revokeLease(entry.lease));
  }

  private revokeLease(id: string | undefined): void {
    if (id === undefined) return;
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
