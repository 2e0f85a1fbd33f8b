/**
 * Conformance, leader election: the whole election contract where a backend declares it (one
 * leader at a time, increasing terms, published metadata, resign hands over at once, renewal,
 * loss when cut off, abort, observe and events, start(), manager.close(), fencing, options
 * checked at construction); an UnsupportedFeatureError naming the backend and why elsewhere. The
 * tests are the published contract kit's (`nestjs-sherlock/testing`, group 'election'), run on
 * every backend of the table (test/support/backends.ts) through test/support/contract.ts.
 */
import { contractOnEveryBackend } from '../support/contract.js';

contractOnEveryBackend('election', 'leader election');
