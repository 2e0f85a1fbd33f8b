/** User-facing messages, built in one place so they stay consistent. */

/** A short, safe rendering of a value for an error message. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > 64 ? `${value.slice(0, 64)}…` : value;
    return `${JSON.stringify(shown)} (a string${value.length > 64 ? ` of ${value.length} characters` : ''})`;
  }
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'bigint') return `${value}n (a bigint)`;
  if (value === null || value === undefined || typeof value === 'boolean') return String(value);
  if (typeof value === 'function') return `a function${value.name ? ` (${value.name})` : ''}`;
  if (typeof value === 'symbol') return value.toString();
  const ctor = (value as { constructor?: { name?: string } }).constructor?.name;
  return ctor && ctor !== 'Object' ? `an instance of ${ctor}` : 'a plain object';
}

/** The built-in backends' names (lib/core/backend-names.ts), for messages. */
const BUILT_IN =
  "'redis', 'memcached', 'etcd', 'memory', 'redlock', 'postgres', 'zookeeper', 'threads', 'cluster'";

/** The message of an error given as a cause. */
export function describeCause(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}

export const messages = {
  invalidOption: (option: string, value: unknown, allowed: string) =>
    `Invalid option '${option}': got ${describeValue(value)}, expected ${allowed}`,
  unknownOption: (option: string, where: string, allowed: readonly string[]) =>
    `Unknown option '${option}' for ${where}; allowed options are: ${allowed.join(', ')}`,
  unknownBackend: (value: unknown, known: readonly string[]) =>
    `Invalid option 'backend': got ${describeValue(value)}, expected one of: ${known.map((n) => `'${n}'`).join(', ')} (or a backend registered with backends.register())`,
  wrongClient: (backend: string, library: string, classes: string, value: unknown) =>
    `Invalid option 'client': the ${backend} backend needs a client of the ${library} library (an instance of ${classes}), got ${describeValue(value)}`,
  unknownClient: (value: unknown, known: readonly string[]) =>
    `Invalid option 'client': got ${describeValue(value)}, which is not a client of any known backend library (${known.join(', ')}); pass an instance of one of them, or set 'backend' as well`,
  noBackend: (name: string) =>
    `Cannot create lock '${name}': no backend is configured. Call configure({ backend }) first (one of ${BUILT_IN}, or a backend you registered), or use a LockManager, or a lock class (RedisLock, PostgresLock, ...) directly`,
  invalidName: (backend: string, name: unknown, rule: string) =>
    `Invalid lock name for the ${backend} backend: got ${describeValue(name)}, ${rule}`,
  acquireInProgress: (name: string) =>
    `An acquire() of lock '${name}' is already in progress on this lock object; use one lock object per concurrent holder`,
  clientAndConnection: (who: string) =>
    `Invalid options: give either 'client' (a client you created) or 'connection' (settings the ${who} connects with), not both`,
  badLockedName: (value: unknown) =>
    `@Locked: the lock name must be a non-empty string or a function (or a non-empty array of names), got ${describeValue(value)}`,
  invalidNames: (option: string, got: string, max: number) =>
    `Invalid option '${option}': got ${got}, expected a non-empty array of at most ${max} lock names (strings)`,
  multiAlreadyHeld: (names: string, member: string) =>
    `Cannot acquire the locks '${names}': this object still holds lock '${member}'; release() it first (or use one object per concurrent holder)`,
  multiFailed: (
    names: string,
    operation: 'release' | 'extend',
    failed: readonly { name: string; error: unknown }[],
    total: number,
  ) =>
    `Could not ${operation} ${failed.length} of the ${total} locks '${names}': ${failed
      .map(({ name, error }) => `'${name}' (${describeCause(error)})`)
      .join('; ')}${
      failed.length < total
        ? `; the others were ${operation === 'release' ? 'released' : 'extended'}`
        : ''
    }`,
  genericLockClient: (backend: string, lockClass: string) =>
    `Invalid option 'client' for Lock: the generic Lock uses the client given to configure(); pass a client to ${lockClass} instead (backend ${backend})`,
  cannotExtend: (backend: string) => `The ${backend} backend cannot extend locks`,
  unsupported: (backend: string, feature: string, reason: string) =>
    `The ${backend} backend does not offer ${feature === 'readWrite' ? 'a read-write lock' : feature === 'semaphore' ? 'a semaphore' : feature === 'election' ? 'leader election' : feature}: ${reason}`,
  electionClosed: (name: string) =>
    `Leader election '${name}' is closed: create a new LeaderElection to campaign again`,
  resigned: (name: string) => `The leadership of election '${name}' was resigned`,
  noSemaphores: 'it implements no semaphore primitives (see docs/extending.md)',
  noReadWrite: 'it implements no read-write lock primitives (see docs/extending.md)',
  noBackendFor: (what: string, name: string) =>
    `Cannot create ${what} '${name}': no backend is configured. Call configure({ backend }) first with a backend that has it (its capabilities say so: backends.get(name).capabilities), or use manager.${what}()`,
  autoExtendWithoutExtend: (backend: string) =>
    `Invalid option 'autoExtend': the ${backend} backend cannot extend a lock (it has no extend primitive, no _extend), so it cannot renew one; leave autoExtend false`,
  noClient: (name: string, lockClass: string) =>
    `Lock '${name}' has no client: pass { client } to ${lockClass}, or register the class with backends.register()`,
  managerClosed: (backend: string) =>
    `This LockManager (backend ${backend}) was closed: it creates no more locks and its client is closed`,
  notHeld: (name: string, operation: 'release' | 'extend', reason: 'not-acquired' | 'not-owned') =>
    reason === 'not-acquired'
      ? `Cannot ${operation} lock '${name}': you do not hold it (this lock object never acquired it, or already released it)`
      : `Cannot ${operation} lock '${name}': you do not hold it any more (it expired, or another owner took it)`,
  notHeldSignal: (name: string) => `Lock '${name}' is not held`,
  timeout: (name: string, timeout: number) =>
    `Timeout elapsed after ${timeout} ms while trying to acquire lock '${name}'`,
  timeoutAll: (names: string, timeout: number, member: string) =>
    `Timeout elapsed after ${timeout} ms while trying to acquire all of the locks '${names}': lock '${member}' was still held by another owner; none of them is held`,
  busy: (name: string) => `Lock '${name}' is held by another owner`,
  busyAll: (names: string, member: string) =>
    `Cannot acquire all of the locks '${names}': lock '${member}' is held by another owner; none of them is held`,
  aborted: (name: string) => `Acquiring lock '${name}' was aborted`,
  backendError: (name: string, operation: string, cause: unknown) =>
    `Backend error during ${operation} of lock '${name}': ${describeCause(cause)}`,
  lost: (name: string, reason: 'taken' | 'unconfirmed') =>
    reason === 'taken'
      ? `Lock '${name}' was lost: the server no longer holds it for this owner`
      : `Lock '${name}' may be lost: it could not be renewed before its expiry`,
  driverMissing: (backend: string, library: string) =>
    `install ${library} to use the ${backend} backend (npm install ${library})`,
  deadline: (operation: string, deadline: number) =>
    `no answer from the server for ${operation} within ${deadline} ms`,
  expireTooShort: (
    option: string,
    backend: string,
    expire: number,
    minimum: number,
    wholeSeconds: boolean,
    note: string,
  ) =>
    messages.invalidOption(
      option,
      expire,
      wholeSeconds
        ? `at least ${minimum} ms on ${backend}, whose expiries are whole seconds (longer ones are rounded up${note}); or null for no expiry`
        : `at least ${minimum} ms on ${backend}${note}; or null for no expiry`,
    ),
  expireTooLong: (option: string, backend: string, expire: number, maximum: number, why: string) =>
    messages.invalidOption(
      option,
      expire,
      `at most ${maximum} ms${maximum % 86_400_000 === 0 ? ` (${maximum / 86_400_000} days)` : ''} on ${backend}${why}; or null for no expiry`,
    ),
};
