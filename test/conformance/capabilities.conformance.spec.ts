/**
 * Conformance, declared capabilities: what each backend declares (fencing, extend, push or poll hand-off) works on its real server, and what it does not declare is refused cleanly. The tests are the published contract kit's
 * (`nestjs-sherlock/testing`, group 'capabilities'), run on every backend of the table
 * (test/support/backends.ts) through test/support/contract.ts.
 */
import { afterAll } from 'vitest';

import { contractOnEveryBackend } from '../support/contract.js';
import { closeEtcdInspector } from '../support/inspect.js';

afterAll(closeEtcdInspector);

contractOnEveryBackend('capabilities', 'declared capabilities');
