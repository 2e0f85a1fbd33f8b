/**
 * The Nest test double: a real `LockService` on the memory backend (a store of its own), whose
 * locks a test makes busy or lost on demand. Provide it in place of the module's:
 * `{ provide: LockService, useValue: createTestingLockService() }` (`@Locked` uses it too).
 */
import { MemoryStore } from '../backends/memory/index.js';
import { type LockControls, lockControls } from '../testing/double.js';
import { LockService } from './lock.service.js';
import { DEFAULT_REGISTRATION } from './sherlock.constants.js';
import type { SherlockModuleOptions } from './sherlock.interfaces.js';
import { createRegistration } from './sherlock.options.js';

/** A memory-backed `LockService` with `makeBusy()`, `free()` and `loseLock()`. */
export type TestingLockService = LockService & LockControls;

/** The options of a testing service: the module's, without the backend and client it chooses. */
export type TestingLockServiceOptions = Omit<
  SherlockModuleOptions,
  'backend' | 'client' | 'connection'
> & {
  /** Share a store with another testing service or manager; default: a new one. */
  store?: MemoryStore;
};

/**
 * A `LockService` on the memory backend for unit tests, validated like a module registration.
 *
 * @example
 * const locks = createTestingLockService();
 * const moduleRef = await Test.createTestingModule({
 *   providers: [InvoicesService, { provide: LockService, useValue: locks }],
 * }).compile();
 * await locks.makeBusy('invoices:42'); // @Locked('invoices:42') now waits, then times out
 */
export function createTestingLockService(
  options: TestingLockServiceOptions = {},
): TestingLockService {
  const { store = new MemoryStore(), ...moduleOptions } = options;
  const registration = createRegistration({ ...moduleOptions, backend: 'memory', client: store });
  const service = new LockService(DEFAULT_REGISTRATION, registration);
  return Object.assign(service, lockControls(service.manager, store));
}
