/** User-facing messages of the Nest glue. */
export const nestMessages = {
  notInitialised: (service: string, method: string) =>
    `@Locked on ${method} needs the SherlockModule${service === 'default' ? '' : ` registration '${service}'`}: import SherlockModule.forRoot${service === 'default' ? '()' : `({ name: '${service}', ... })`} (or forRootAsync) in your application module`,
  notAMethod: (target: string) => `@Locked can only decorate methods; '${target}' is not a method`,
  badLockName: (method: string, value: string) =>
    `@Locked on ${method}: the lock name function returned ${value}; it must return a non-empty string`,
  asyncFactory: () =>
    'SherlockModule.forRootAsync() needs exactly one of useFactory, useClass or useExisting',
  atLeastForAboveExpire: (atLeastFor: number, expire: number) =>
    `Invalid option 'atLeastFor': got ${atLeastFor}, expected at most the lock's expire (${expire} ms): a lock cannot be kept longer than it lives`,
  clientAndConnection: () =>
    "Invalid options: give either 'client' (a client you created) or 'connection' (settings the module connects with), not both",
  released: (name: string) => `Released lock '${name}' still held at shutdown`,
  releaseFailed: (name: string, error: unknown) =>
    `Could not release lock '${name}' at shutdown (it expires on its own): ${error instanceof Error ? error.message : String(error)}`,
  leftToExpire: (name: string) =>
    `Left lock '${name}' to expire on its own at shutdown (kept for atLeastFor)`,
  lostAtRelease: (name: string) =>
    `Lock '${name}' was no longer owned when the method finished: it expired while the method ran`,
};
