/**
 * Conformance, server down: a lock whose client points at a dead port fails within its deadlines and never reports the lock held. The tests are the published contract kit's
 * (`nestjs-sherlock/testing`, group 'server-down'), run on every backend of the table
 * (test/support/backends.ts) through test/support/contract.ts.
 */
import { contractOnEveryBackend } from '../support/contract.js';

contractOnEveryBackend('server-down', 'server down');
