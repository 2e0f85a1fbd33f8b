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
    `Cannot create lock '${name}': no backend is configured. Call configure({ backend: 'redis' | 'memcached' | 'etcd' | 'memory' }) first, or use RedisLock, MemcachedLock, EtcdLock or MemoryLock directly`,
  invalidName: (backend: string, name: unknown, rule: string) =>
    `Invalid lock name for the ${backend} backend: got ${describeValue(name)}, ${rule}`,
  acquireInProgress: (name: string) =>
    `An acquire() of lock '${name}' is already in progress on this lock object; use one lock object per concurrent holder`,
};
