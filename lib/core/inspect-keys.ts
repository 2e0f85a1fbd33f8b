/**
 * Helpers for backends' inspection primitives (`inspection.list`): from a key back to a lock name.
 */

/**
 * The lock name of `key` under `namespace` with the default key format (`namespace_name`, or
 * `name` without namespace), if `key` is in the namespace and its name starts with `prefix`.
 */
export function nameOfKey(
  key: string,
  namespace: string | null,
  prefix: string,
  separator = '_',
): string | undefined {
  let name = key;
  if (namespace !== null) {
    const head = `${namespace}${separator}`;
    if (!key.startsWith(head)) return undefined;
    name = key.slice(head.length);
  }
  // Library keys (fencing counters, queues) hold a control character: never a lock's name.
  // eslint-disable-next-line no-control-regex -- control characters are what is skipped
  if (name.length === 0 || /[\u0000-\u001f\u007f]/u.test(name)) return undefined;
  return name.startsWith(prefix) ? name : undefined;
}
