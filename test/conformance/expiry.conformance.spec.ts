/**
 * Conformance, expiry: the server frees an expired lock by itself, and a holder whose lock expired cannot release (the slowest waits of the suite, hence a file of their own). The tests are the published contract kit's
 * (`nestjs-sherlock/testing`, group 'expiry'), run on every backend of the table
 * (test/support/backends.ts) through test/support/contract.ts.
 */
import { contractOnEveryBackend } from '../support/contract.js';

contractOnEveryBackend('expiry', 'expiry');
