import { messages } from '../messages.js';
import { LockError } from './lock.error.js';

/** A feature beyond the mutex, which a backend declares (or not) in its capabilities. */
export type LockFeature = 'semaphore' | 'readWrite' | 'inspection' | 'listing' | 'election';

/**
 * The backend cannot offer this feature safely, so it refuses it when the object is created
 * (nothing is sent to the server). `backend` names the backend, `feature` the feature and
 * `reason` why (the backend's own explanation).
 *
 * @example
 * try {
 *   new LockManager({ backend: 'memcached' }).semaphore('reports', 4);
 * } catch (err) {
 *   if (err instanceof UnsupportedFeatureError) console.error(err.reason);
 * }
 */
export class UnsupportedFeatureError extends LockError {
  constructor(
    lockName: string,
    readonly backend: string,
    readonly feature: LockFeature,
    readonly reason: string,
  ) {
    super(messages.unsupported(backend, feature, reason), lockName);
  }
}
