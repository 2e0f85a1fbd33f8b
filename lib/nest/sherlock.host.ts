import type { LockService } from './lock.service.js';
import { LOCK_SERVICES } from './sherlock.constants.js';

/**
 * How a `@Locked` method finds its LockService at call time. The explorer attaches each
 * registration's service to the provider instances that have `@Locked` methods (so two
 * applications in one process each use their own); instances Nest did not hand to the explorer
 * (request-scoped, or created by hand) fall back to the registration started last.
 */
const lastStarted = new Map<string, LockService>();

export const sherlockHost = {
  started(service: LockService): void {
    lastStarted.set(service.registration, service);
  },

  stopped(service: LockService): void {
    if (lastStarted.get(service.registration) === service) lastStarted.delete(service.registration);
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
    return attached ?? lastStarted.get(registration);
  },
};
