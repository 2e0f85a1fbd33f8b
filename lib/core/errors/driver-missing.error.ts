import { messages } from '../messages.js';

/**
 * A backend was used whose client library is not installed (drivers are optional peer
 * dependencies: install only the ones you use).
 *
 * @example
 * // Error: install ioredis to use the redis backend (npm install ioredis)
 */
export class DriverMissingError extends Error {
  constructor(
    readonly backend: string,
    readonly library: string,
    options?: { cause?: unknown },
  ) {
    super(messages.driverMissing(backend, library), options);
    this.name = 'DriverMissingError';
  }
}
