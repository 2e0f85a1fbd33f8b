import type { EtcdClient } from './client.js';

/**
 * Etcd leases for the lock entries: granted, kept alive and revoked, and a small pool per client
 * of leases whose entry was deleted, reused by the next entry with the same TTL (saving a grant
 * and a revoke, two raft writes, per acquire). A pooled lease is attached to no key; it is kept
 * alive (and checked alive) when taken, and runs out on its own if nobody takes it.
 */

/** Leases kept per client and TTL; more are revoked. */
const POOL_SIZE = 8;

const pools = new WeakMap<object, Map<number, string[]>>();

/** One keep-alive (which the leader answers without a raft write); false if the lease is gone. */
export async function keepAlive(etcd: EtcdClient, id: string): Promise<boolean> {
  const stream = await etcd.leaseClient.leaseKeepAlive();
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

/** Revokes a lease in the background (it runs out by itself if this fails). */
export function revoke(etcd: EtcdClient, id: string | undefined): void {
  if (id === undefined) return;
  etcd.leaseClient.leaseRevoke({ ID: id }).catch(() => undefined);
}

/** A lease of `seconds` for a new entry: a pooled one still alive (kept alive now), or a new one. */
export async function takeLease(etcd: EtcdClient, seconds: number): Promise<string> {
  const pooled = pools.get(etcd)?.get(seconds)?.pop();
  if (pooled !== undefined) {
    try {
      if (await keepAlive(etcd, pooled)) return pooled;
    } catch {
      // the lease may be gone or the server away: a grant will tell
    }
    revoke(etcd, pooled);
  }
  return (await etcd.leaseClient.leaseGrant({ TTL: seconds })).ID;
}

/** Gives back the lease of a deleted entry (attached to no key any more) for reuse. */
export function giveLease(etcd: EtcdClient, id: string, seconds: number): void {
  let pool = pools.get(etcd);
  if (!pool) pools.set(etcd, (pool = new Map()));
  const leases = pool.get(seconds) ?? [];
  if (leases.length >= POOL_SIZE) {
    revoke(etcd, id);
    return;
  }
  leases.push(id);
  pool.set(seconds, leases);
}
