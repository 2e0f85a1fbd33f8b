/**
 * A custom backend written the new way: one `LockBackend` object (its primitives and what it can
 * do), registered with `backends.register()`. A lock over etcd's JSON gateway (`/v3/...` over
 * HTTP, with fetch): the key holds the owner token, on a lease of `expire` rounded up to whole
 * seconds. It declares fencing tokens (the revision of the put that took the lock) and extend (an
 * owner-checked put on a new lease), so the contract suite runs those tests on it too; blocking,
 * timeouts, retries, deadlines, renewal and the loss signal come from the core.
 */
import { backends } from 'nestjs-sherlock';
import type { LockBackend, LockTarget } from 'nestjs-sherlock/backend';

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** The client: one etcd endpoint, spoken to over HTTP. */
export class EtcdGateway {
  constructor(readonly endpoint = 'http://127.0.0.1:2379') {}

  async call<T>(path: string, body: object): Promise<T> {
    const response = await fetch(`${this.endpoint}/v3/${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
    });
    if (!response.ok) throw new Error(`etcd ${path}: HTTP ${response.status}`);
    return (await response.json()) as T;
  }
}

type Lock = LockTarget<EtcdGateway>;

/** What a holding keeps for release and extend: the lease its key is on (none: no expiry). */
interface Held {
  lease: string | undefined;
}

/** A new lease of `ms` rounded up to whole seconds (undefined for a lock that never expires). */
async function grant(lock: Lock, ms: number | null): Promise<string | undefined> {
  if (ms === null) return undefined;
  const { ID } = await lock.client.call<{ ID: string }>('lease/grant', {
    TTL: Math.ceil(ms / 1000),
  });
  return ID;
}

/** Revokes a lease no key needs any more (best effort: left alone, it runs out by itself). */
async function revoke(lock: Lock, lease: string | undefined): Promise<void> {
  if (lease !== undefined) await lock.client.call('lease/revoke', { ID: lease }).catch(() => {});
}

/** An etcd transaction on the lock's key: `then` runs if `compare` holds, all in one step. */
function txn(lock: Lock, compare: object, then: object) {
  return lock.client.call<{ succeeded?: boolean; header: { revision: string } }>('kv/txn', {
    compare: [{ key: b64(lock.key), ...compare }],
    success: [then],
  });
}

/** Puts the owner token on the key, on `lease`. */
const put = (lock: Lock, token: string, lease: string | undefined) => ({
  request_put: { key: b64(lock.key), value: b64(token), ...(lease ? { lease } : {}) },
});

/** The key holds exactly this owner's token. */
const ownedBy = (token: string) => ({ target: 'VALUE', result: 'EQUAL', value: b64(token) });

const etcdGateway: LockBackend<EtcdGateway, Held> = {
  name: 'etcdgateway',
  library: 'fetch',
  capabilities: {
    fencing: true,
    extend: true,
    handOff: 'poll',
    crossProcess: true,
    // Leases count whole seconds (and etcd raises a TTL below its minimum, 2 s by default).
    expiry: { granularity: 1000, minimum: 1000, maximum: null, earlyBy: 0 },
  },
  clientClass: () => EtcdGateway,
  connect(connection) {
    if (connection === undefined || typeof connection === 'string') {
      return new EtcdGateway(connection);
    }
    throw new TypeError('the etcdgateway backend connects to one URL, such as http://host:2379');
  },
  formatKey: (name, namespace) => (namespace === null ? name : `${namespace}/${name}`),

  /** Puts the token if the key does not exist; the put's revision is the fencing token. */
  async acquire(lock, token) {
    const lease = await grant(lock, lock.expire);
    const absent = { target: 'CREATE', result: 'EQUAL', create_revision: '0' };
    const { succeeded, header } = await txn(lock, absent, put(lock, token, lease));
    if (!succeeded) {
      await revoke(lock, lease);
      return false;
    }
    return { granted: true, fencingToken: header.revision, held: { lease } };
  },

  /** Deletes the key if it holds this owner's token. */
  async release(lock, token, held) {
    const { succeeded } = await txn(lock, ownedBy(token), {
      request_delete_range: { key: b64(lock.key) },
    });
    await revoke(lock, held?.lease);
    return succeeded === true;
  },

  /** Moves the key to a new lease of `ttl` if it still holds this owner's token. */
  async extend(lock, token, ttl, held) {
    const lease = await grant(lock, ttl);
    const { succeeded } = await txn(lock, ownedBy(token), put(lock, token, lease));
    if (!succeeded) {
      await revoke(lock, lease);
      return false;
    }
    await revoke(lock, held?.lease);
    if (held) held.lease = lease;
    return true;
  },

  async locked(lock) {
    const { count } = await lock.client.call<{ count?: string }>('kv/range', {
      key: b64(lock.key),
      count_only: true,
    });
    return Number(count ?? 0) > 0;
  },
};

/** Registered: `backends.ETCDGATEWAY`, and the name 'etcdgateway' works in configure(). */
export const ETCDGATEWAY = backends.register(etcdGateway);
