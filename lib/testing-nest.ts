/**
 * `nestjs-sherlock/testing/nest`: the Nest test double, a memory-backed `LockService` whose locks
 * a test makes busy or lost on demand (see docs/testing.md). Apart from `nestjs-sherlock/testing`
 * so that the contract kit needs no Nest. Every export is named here on purpose.
 */
export {
  createTestingLockService,
  type TestingLockService,
  type TestingLockServiceOptions,
} from './nest/testing.js';
export type { LockControls } from './testing/double.js';
// Named in the signatures above.
export type { LockService, SherlockModuleOptions } from './nest/index.js';
export type { MemoryStore } from './sherlock.js';
