import { createRequire } from 'node:module';
import { DriverMissingError } from './errors/driver-missing.error.js';

const requireFromHere = createRequire(import.meta.url);

/**
 * Loads a driver (an optional peer dependency) the first time a backend needs it, so importing
 * nestjs-sherlock never requires a driver the application does not use.
 */
export function loadDriver<T>(backend: string, library: string): T {
  try {
    return requireFromHere(library) as T;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const message = err instanceof Error ? err.message : '';
    if (code === 'MODULE_NOT_FOUND' && message.includes(`'${library}'`)) {
      throw new DriverMissingError(backend, library, { cause: err });
    }
    throw err;
  }
}
