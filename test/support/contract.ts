/**
 * Our own conformance tests, run THROUGH the published contract kit (`nestjs-sherlock/testing`),
 * exactly as a custom backend's author runs it: every fixture of the backend table becomes a
 * `ContractSubject` (its registered definition, clients to our test servers, a client to a dead
 * port, the raw server view), and the kit registers its tests with Vitest. No backend, built-in
 * or not, gets a test the kit does not give it (the backend-specific extras are in
 * test/conformance/backend-specific.conformance.spec.ts).
 */
import {
  type ContractGroup,
  type ContractSubject,
  runContractSuite,
} from 'nestjs-sherlock/testing';
import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';

import { type BackendFixture, fixtures } from './backends.js';

/** Vitest's functions, as the kit takes them. */
export const vitestRunner = { describe, it, beforeAll, afterAll, afterEach };

/** What the kit is given for one fixture of the table. */
export function subjectOf(fixture: BackendFixture): ContractSubject {
  return {
    backend: fixture.definition,
    createClient: () => fixture.createClient(),
    closeClient: (client) => fixture.closeClient(client),
    ...(fixture.deadClient ? { deadClient: fixture.deadClient.bind(fixture) } : {}),
    server: fixture.server,
    keySeparator: fixture.keySeparator,
  };
}

/** Runs one group of the contract on every backend of the table (one file per group: parallel). */
export function contractOnEveryBackend(group: ContractGroup, title: string): void {
  for (const fixture of fixtures) {
    // Runs through the kit in test/kit/etcd-gateway.contract.spec.ts, exactly as its author would
    // (the example of docs/extending.md), rather than twice.
    if (fixture.name === 'etcdgateway') continue;
    runContractSuite(vitestRunner, subjectOf(fixture), {
      only: [group],
      title: `${fixture.name} backend: ${title}`,
    });
  }
}
