/**
 * The part of an etcd3 client (`Etcd3`, or a `Namespace` of one) the etcd backend calls, written
 * out so that no declaration of this package imports the optional `etcd3` driver.
 * test/unit/etcd-client.types.ts checks that etcd3's own `Namespace` fits it.
 */

interface KeyValue {
  readonly value: { toString(): string };
  readonly create_revision: string;
  readonly lease: string;
}

interface RangeResponse {
  readonly kvs: readonly KeyValue[];
  readonly count: string;
  readonly header: { readonly revision: string };
}

interface Range {
  prefix(prefix: string): Range;
  sort(target: 'Create', order: 'Ascend' | 'Descend'): Range;
  limit(count: number): Range;
  maxCreateRevision(revision: string): Range;
  exec(): Promise<RangeResponse>;
  count(): Promise<number>;
}

interface Put {
  value(value: string): Put;
  lease(id: string): Put;
}

interface Delete {
  key(key: string): Delete;
}

interface Transaction {
  /** Operations: builders of `put()`, `getAll()`, `delete()` (etcd3 takes them as they are). */
  then(...operations: unknown[]): Transaction;
  commit(): Promise<{
    readonly succeeded: boolean;
    readonly header: { readonly revision: string };
    readonly responses: readonly {
      readonly response_range?: { readonly kvs: readonly KeyValue[] } | null;
    }[];
  }>;
}

/** A key as a watch event reports it (`previous`, with `withPreviousKV()`: as it was before). */
export interface WatchedKeyValue {
  readonly create_revision: string;
}

/** A watch on one key, or on a prefix. */
export interface EtcdWatcher {
  /** `previous`: the key as it was before the delete (with `withPreviousKV()`). */
  on(event: 'delete', listener: (kv: WatchedKeyValue, previous?: WatchedKeyValue) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  cancel(): Promise<void>;
}

interface WatchBuilder {
  key(key: string): WatchBuilder;
  prefix(prefix: string): WatchBuilder;
  only(...operations: ('put' | 'delete')[]): WatchBuilder;
  withPreviousKV(): WatchBuilder;
  startRevision(revision: string): WatchBuilder;
  watcher(): EtcdWatcher;
}

interface KeepAliveStream {
  on(event: 'data', listener: (reply: { TTL: string }) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  write(request: { ID: string }): unknown;
  end(): unknown;
}

export interface EtcdClient {
  put(key: string): Put;
  get(key: string): { exec(): Promise<RangeResponse> };
  getAll(): Range;
  delete(): Delete;
  if(
    key: string,
    target: 'Create' | 'Value',
    comparator: '==',
    value: string | number,
  ): Transaction;
  watch(): WatchBuilder;
  readonly leaseClient: {
    leaseGrant(request: { TTL: number }): Promise<{ ID: string }>;
    leaseRevoke(request: { ID: string }): Promise<unknown>;
    leaseKeepAlive(): Promise<KeepAliveStream>;
  };
}
