/**
 * The contract suite on the etcdgateway backend (./etcd-http.backend.ts), run the way
 * its author would run it: `runContractSuite()` from `nestjs-sherlock/testing`, Vitest's
 * functions passed in, clients to an etcd the author runs (here the test setup's, ETCD_HOSTS).
 */
import { runContractSuite } from 'nestjs-sherlock/testing';
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';

import { ETCDGATEWAY, EtcdGateway } from './etcd-http.backend.js';

const endpoint = process.env.ETCD_HOSTS?.split(',')[0] ?? 'http://127.0.0.1:2379';

runContractSuite(
  { describe, it, beforeAll, afterAll, afterEach },
  {
    backend: ETCDGATEWAY,
    createClient: () => new EtcdGateway(endpoint),
    closeClient: () => undefined, // fetch keeps no connection to close
    // Optional: a client to a port where nothing listens (enables the "server down" tests).
    deadClient: (port) => new EtcdGateway(`http://127.0.0.1:${port}`),
    keySeparator: '/', // its formatKey joins namespace and name with '/'
  },
);
