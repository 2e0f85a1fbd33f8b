/**
 * Conformance, several locks at once: manager.lockAll(): all or none, no deadlock in opposite orders, one timeout, abort, loss, extend, fencing. The tests are the published contract kit's
 * (`nestjs-sherlock/testing`, group 'multilock'), run on every backend of the table
 * (test/support/backends.ts) through test/support/contract.ts.
 */
import { afterAll } from 'vitest';

import { contractOnEveryBackend } from '../support/contract.js';
import { closeEtcdInspector } from '../support/inspect.js';

afterAll(closeEtcdInspector);

contractOnEveryBackend('multilock', 'several locks at once');
