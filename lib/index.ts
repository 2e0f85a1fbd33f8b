/**
 * nestjs-sherlock: distributed locks for TypeScript and NestJS.
 */
export * from './sherlock.js';
