import type { LockService } from 'nestjs-sherlock';

/** Why the configured backend cannot hold a leader election, or `undefined` if it can. */
export function electionUnsupported(locks: LockService): string | undefined {
  const { name, capabilities, impl } = locks.manager.backend;
  if (capabilities.election === true) return undefined;
  return `the '${name}' backend cannot hold a leader election (${impl.unsupported?.election ?? 'no election support'})`;
}
