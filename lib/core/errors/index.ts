export * from './lock.error.js';
export * from './lock-timeout.error.js';
export * from './lock-release.error.js';
export * from './lock-backend.error.js';
export * from './lock-aborted.error.js';
export * from './lock-busy.error.js';
export * from './lock-lost.error.js';
export * from './driver-missing.error.js';
