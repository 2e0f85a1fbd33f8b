/**
 * Conformance, validation, configure() and shutdown(): invalid names, options, clients and acquire() arguments; configure() and the generic Lock; shutdown(). The tests are the published contract kit's
 * (`nestjs-sherlock/testing`, group 'configuration'), run on every backend of the table
 * (test/support/backends.ts) through test/support/contract.ts.
 */
import { contractOnEveryBackend } from '../support/contract.js';

contractOnEveryBackend('configuration', 'validation, configure() and shutdown()');
