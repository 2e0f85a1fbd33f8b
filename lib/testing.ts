/**
 * `nestjs-sherlock/testing`: the contract suite every backend passes, published so that the
 * author of a custom backend runs it on theirs (with node:test, Vitest or Jest). See
 * docs/extending.md. (The test doubles for the unit tests of code that takes locks,
 * `createTestingLockManager()` and `createTestingLockService()`, are in the main entry: see
 * docs/testing.md.) Every export is named here on purpose (test/package/exports.spec.ts keeps
 * the list).
 */
export {
  runContractSuite,
  CONTRACT_GROUPS,
  type ContractGroup,
  type ContractSuiteOptions,
} from './testing/suite.js';
export type {
  ContractRunner,
  ContractSubject,
  ServerInspector,
  LockOnServer,
} from './testing/subject.js';
// Named in the signatures above (the backend-author entry, nestjs-sherlock/backend, has them too).
export type {
  BackendDefinition,
  BackendCapabilities,
  ExpiryLimits,
  ClientClass,
  ConnectionSettings,
  LockClass,
  LockOptions,
} from './sherlock.js';
