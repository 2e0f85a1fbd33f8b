/**
 * A custom backend, written the way docs/extending.md's "The sherlock way" section shows: a lock over etcd's
 * JSON gateway (`/v3/...` over plain HTTP with fetch), registered with `backends.register()`.
 * It implements only the three primitives; blocking, timeouts, retries, deadlines, `using` and
 * validation come from BaseLock. It declares no fencing and (without `_extend`) no extend, so the
 * contract suite checks that those are refused cleanly; its leases count whole seconds, which its
 * registration says. (test/support/etcd-http.backend.ts is the same lock written the new way.)
 */
import { BaseLock, backends, type BaseLockOptions } from 'nestjs-sherlock';

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

/** The client: one etcd endpoint spoken to over HTTP. */
export class EtcdHttpClient {
  constructor(readonly endpoint: string = 'http://127.0.0.1:2379') {}

  async call<T>(path: string, body: object): Promise<T> {
    const response = await fetch(`${this.endpoint}/v3/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (!response.ok)
      throw new Error(`etcd ${path}: HTTP ${response.status} ${await response.text()}`);
    return (await response.json()) as T;
  }
}

export class EtcdHttpLock extends BaseLock<EtcdHttpClient> {
  constructor(name: string, options?: BaseLockOptions) {
    super(name, options);
  }

  protected override formatKey(name: string, namespace: string | null): string {
    return namespace === null ? name : `${namespace}/${name}`;
  }

  protected async _acquire(token: string): Promise<boolean> {
    const put: Record<string, string> = { key: b64(this.key), value: b64(token) };
    if (this.expire !== null) {
      const ttl = Math.ceil(this.expire / 1000);
      put.lease = (await this.client.call<{ ID: string }>('lease/grant', { TTL: ttl })).ID;
    }
    const { succeeded } = await this.client.call<{ succeeded?: boolean }>('kv/txn', {
      compare: [{ key: b64(this.key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      success: [{ request_put: put }],
    });
    return succeeded === true;
  }

  protected async _release(token: string): Promise<boolean> {
    const { succeeded } = await this.client.call<{ succeeded?: boolean }>('kv/txn', {
      compare: [{ key: b64(this.key), target: 'VALUE', result: 'EQUAL', value: b64(token) }],
      success: [{ request_delete_range: { key: b64(this.key) } }],
    });
    return succeeded === true;
  }

  protected async _locked(): Promise<boolean> {
    const { count } = await this.client.call<{ count?: string }>('kv/range', {
      key: b64(this.key),
    });
    return Number(count ?? 0) > 0;
  }
}

export const ETCDHTTP = backends.register({
  name: 'etcdhttp',
  lockClass: EtcdHttpLock,
  library: 'fetch',
  clientClass: EtcdHttpClient,
  defaultArgs: ['http://127.0.0.1:2379'],
  // Leases count whole seconds: shorter expiries are refused, and the loss signal counts on it.
  capabilities: { expiry: { granularity: 1000, minimum: 1000, maximum: null, earlyBy: 0 } },
});
