/**
 * Conformance, lock conformance: acquire, locked, release and keys; blocking and non-blocking acquires, timeouts and abort signals; release refusals; using() and `await using`; mutual exclusion. The tests are the published contract kit's
 * (`nestjs-sherlock/testing`, group 'lock'), run on every backend of the table
 * (test/support/backends.ts) through test/support/contract.ts.
 */
import { contractOnEveryBackend } from '../support/contract.js';

contractOnEveryBackend('lock', 'lock conformance');
