import { messages } from '../core/messages.js';

/** User-facing messages of the Nest glue. */
export const nestMessages = {
  notInitialised: (registration: string, method: string) =>
    `@Locked on ${method} found no LockService of the SherlockModule${registration === 'default' ? '' : ` registration '${registration}'`}: import SherlockModule.forRoot${registration === 'default' ? '()' : `({ name: '${registration}', ... })`} (or forRootAsync) with isGlobal: true in your application module, or import it in the module that provides ${method.split('.')[0]}; the class must be a provider or controller created by Nest (not with new)`,
  nameAndService: (name: string, service: string) =>
    `@Locked: 'name' (${JSON.stringify(name)}) and its deprecated spelling 'service' (${JSON.stringify(service)}) name different registrations; give only 'name'`,
  notAMethod: (target: string) => `@Locked can only decorate methods; '${target}' is not a method`,
  badLockName: (method: string, value: string) =>
    `@Locked on ${method}: the lock name function returned ${value}; it must return a non-empty string (or a non-empty array of them)`,
  moduleSkip: () =>
    messages.invalidOption(
      'locked.onBusy',
      'skip',
      "'throw' or nothing: a module-wide 'skip' would make every @Locked method and run() call resolve undefined without their types saying so; give onBusy: 'skip' on each @Locked or run() call that may skip",
    ),
  asyncFactory: () =>
    'SherlockModule.forRootAsync() needs exactly one of useFactory, useClass or useExisting',
  atLeastForAboveExpire: (atLeastFor: number, expire: number) =>
    `Invalid option 'atLeastFor': got ${atLeastFor}, expected at most the lock's expire (${expire} ms): a lock cannot be kept longer than it lives`,
  clientAndConnection: () => messages.clientAndConnection('module'),
  badLockedName: (value: unknown) => messages.badLockedName(value),
  closed: (registration: string) =>
    `The SherlockModule registration '${registration}' was shut down: its client is closed`,
  released: (name: string) => `Released lock '${name}' still held at shutdown`,
  releaseFailed: (name: string, error: unknown) =>
    `Could not release lock '${name}' at shutdown (it expires on its own): ${error instanceof Error ? error.message : String(error)}`,
  leftToExpire: (name: string) =>
    `Left lock '${name}' to expire on its own at shutdown (kept for atLeastFor)`,
  limitAndMode: (limit: unknown, mode: unknown) =>
    `Invalid option 'mode': got ${JSON.stringify(mode)} together with 'limit' ${JSON.stringify(limit)}; @Locked takes either a semaphore permit (limit) or a side of a read-write lock (mode), not both`,
  primitiveWithNames: (option: 'limit' | 'mode', value: unknown, where: string) =>
    `Invalid option '${option}': got ${JSON.stringify(value)} with several lock names (${where}); a semaphore (limit) or read-write lock (mode) takes one name: give one name, or drop '${option}'`,
  cannotUpgrade: (name: string) =>
    `Cannot take the write side of read-write lock '${name}' while this call chain holds its read side: a read lock cannot be upgraded (the writer would wait for itself); take the write side in the outer call`,
  errorMappingTwice: (first: string, second: string) =>
    `SherlockModule option 'errorMapping' is set on the registrations '${first}' and '${second}': it applies to the whole application, so set it on one registration only`,
  lostAtRelease: (name: string) =>
    `Lock '${name}' was no longer owned when the method finished: it expired while the method ran`,
};
