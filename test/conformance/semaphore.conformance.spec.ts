/**
 * Conformance, semaphore: the whole semaphore contract where a backend declares it; an UnsupportedFeatureError naming the backend and why elsewhere. The tests are the published contract kit's
 * (`nestjs-sherlock/testing`, group 'semaphore'), run on every backend of the table
 * (test/support/backends.ts) through test/support/contract.ts.
 */
import { contractOnEveryBackend } from '../support/contract.js';

contractOnEveryBackend('semaphore', 'semaphore');
