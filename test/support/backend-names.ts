/**
 * The backends the tests register under their own names, added to the names a `backend` option
 * accepts (`BackendName`) by declaration merging, the way docs/nest.md tells users to add theirs.
 * Integration tests name the built package ('nestjs-sherlock'); the unit layer names lib/ itself.
 */
declare module 'nestjs-sherlock' {
  interface SherlockBackends {
    // test/support/etcd-http.backend.ts, registered twice (test/support/backends.ts)
    etcdhttp: true;
    etcdgateway: true;
  }
}

declare module '../../lib/core/backend-names.js' {
  interface SherlockBackends {
    // test/unit: each spec file registers its fake backends under its own names.
    unitAcquirePoll: true;
    unitAcquirePush: true;
    unitHandOff: true;
    unitHandOffLazy: true;
    unitPushedGrant: true;
    unitHold: true;
    unitHoldCoarse: true;
    unitHoldNoExtend: true;
    unitHoldSeconds: true;
    unitManager: true;
    unitManagerSeconds: true;
    unitMulti: true;
    unitSemaphoreNone: true;
    unitSemaphoreWhy: true;
    unitEvents: true;
    unitEventsPush: true;
    unitReadWriteWhy: true;
    unitReadWriteNone: true;
  }
}

export {};
