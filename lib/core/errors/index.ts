export { LockError } from './lock.error.js';
export { LockTimeoutError } from './lock-timeout.error.js';
export {
  LockNotHeldError,
  LockReleaseError,
  type LockReleaseReason,
} from './lock-release.error.js';
export { LockBackendError } from './lock-backend.error.js';
export { LockAbortedError } from './lock-aborted.error.js';
export { LockBusyError } from './lock-busy.error.js';
export { LockLostError, type LockLostReason } from './lock-lost.error.js';
export { DriverMissingError } from './driver-missing.error.js';
export { MultiLockError, type MultiLockFailure } from './multi-lock.error.js';
export { UnsupportedFeatureError, type LockFeature } from './unsupported-feature.error.js';
