/**
 * Conformance, read-write lock: the whole read-write contract where a backend declares it (many
 * readers or one writer, writers never starve, pushed wake-ups, timeout, abort, a dead holder's
 * holding dropped by the server, fencing, extend, autoExtend, using); an UnsupportedFeatureError
 * naming the backend and why elsewhere. The tests are the published contract kit's
 * (`nestjs-sherlock/testing`, group 'readwrite'), run on every backend of the table
 * (test/support/backends.ts) through test/support/contract.ts.
 */
import { contractOnEveryBackend } from '../support/contract.js';

contractOnEveryBackend('readwrite', 'read-write lock');
