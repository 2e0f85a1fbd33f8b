/**
 * nestjs-sherlock: distributed locks for TypeScript and NestJS. The core (locks, backends,
 * configuration, errors) is also importable without Nest as `nestjs-sherlock/core`.
 */
export * from './sherlock.js';
export * from './nest/index.js';
