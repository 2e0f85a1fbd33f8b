/**
 * `nestjs-sherlock/testing`: the contract suite every backend passes, published so that the
 * author of a custom backend runs it on theirs (with node:test, Vitest or Jest), and test doubles
 * for the unit tests of code that takes locks. See docs/extending.md and docs/testing.md. Every
 * export is named here on purpose (test/package/exports.spec.ts keeps the list).
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
export {
  createTestingLockManager,
  type TestingLockManager,
  type TestingLockManagerOptions,
  type LockControls,
} from './testing/double.js';
// Named in the signatures above (see the core entry, nestjs-sherlock/core, for the rest).
export type {
  BackendDefinition,
  LockClass,
  LockManager,
  LockManagerOptions,
  MemoryStore,
} from './sherlock.js';
