/**
 * Compile-time check (npm run typecheck): etcd3's own client fits the structural `EtcdClient`
 * the etcd backend is written against, so the backend's calls match the real driver.
 */
import type { Etcd3, Namespace } from 'etcd3';
import type { EtcdClient } from '../../lib/backends/etcd/client.js';

export const namespaceFits = (client: Namespace): EtcdClient => client;
export const clientFits = (client: Etcd3): EtcdClient => client;
