import type { LockService } from './lock.service.js';
import { LOCK_SERVICES } from './sherlock.constants.js';

/**
 * How a `@Locked` method finds its LockService at call time. The explorer attaches each
 * registration's service to the provider instances that have `@Locked` methods (so two
 * applications in one process each use their own); instances Nest did not hand to the explorer
 * (request-scoped, or created by hand) fall back to the registration started last that is still
 * running.
 */
const started = new Map<string, LockService[]>();

export const sherlockHost = {
  started(service: LockService): void {
    started.set(service.registration, [...(started.get(service.registration) ?? []), service]);
  },

  stopped(service: LockService): void {
    const rest = (started.get(service.registration) ?? []).filter((s) => s !== service);
    if (rest.length > 0) started.set(service.registration, rest);
    else started.delete(service.registration);
  },

  attach(instance: object, service: LockService): void {
    const host = instance as { [LOCK_SERVICES]?: Map<string, LockService> };
    if (!Object.prototype.hasOwnProperty.call(host, LOCK_SERVICES)) {
      Object.defineProperty(host, LOCK_SERVICES, { value: new Map(), enumerable: false });
    }
    host[LOCK_SERVICES]?.set(service.registration, service);
  },

  find(instance: unknown, registration: string): LockService | undefined {
    const attached =
      typeof instance === 'object' && instance !== null
        ? (instance as { [LOCK_SERVICES]?: Map<string, LockService> })[LOCK_SERVICES]?.get(
            registration,
          )
        : undefined;
    return attached ?? started.get(registration)?.at(-1);
  },
};
