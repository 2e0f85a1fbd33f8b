/**
 * The backend-author API of nestjs-sherlock (`nestjs-sherlock/backend`): what a backend
 * implements, the registry it joins, and the helpers the built-in backends use.
 * See the README's "Writing a backend". Every export is named here on purpose.
 */
export type {
  LockBackend,
  BackendCapabilities,
  ExpiryLimits,
  LockTarget,
  AttemptOutcome,
  HandOff,
  ClientClass,
} from './core/backend.js';
export {
  backends,
  BackendDefinition,
  type Backends,
  type BackendRegistration,
  type BackendDeclaration,
  type LockClass,
} from './core/registry.js';
export { BaseLock, type BaseLockOptions, type AcquireResult } from './core/base-lock.js';
export {
  parseConnection,
  type ConnectionSettings,
  type ParsedConnection,
} from './core/connection.js';
export { loadDriver } from './core/driver.js';
export { sleepBeforeNextAttempt, FALLBACK_POLL, type WaitFacts } from './core/wait-session.js';
