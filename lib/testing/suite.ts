/**
 * `runContractSuite()`: the contract every backend of this library passes, registered with the
 * test runner you pass in, for the backend you pass in, on the server you run.
 */
import { BackendDefinition } from '../sherlock.js';
import { capabilitiesContract } from './contract/capabilities.js';
import { configurationContract } from './contract/configuration.js';
import { electionContract } from './contract/election.js';
import { expiryContract } from './contract/expiry.js';
import { lockContract } from './contract/lock.js';
import { multiLockContract } from './contract/multilock.js';
import { readWriteContract } from './contract/readwrite.js';
import { semaphoreContract } from './contract/semaphore.js';
import { serverDownContract } from './contract/server-down.js';
import {
  type ContractRunner,
  type ContractSubject,
  infoOf,
  type Runner,
  runnerOf,
  type SubjectInfo,
} from './subject.js';

/**
 * The parts of the contract, each a `describe` block of its own ('server-down' only when the
 * subject gives `deadClient`).
 */
export const CONTRACT_GROUPS = [
  'lock',
  'capabilities',
  'expiry',
  'server-down',
  'configuration',
  'multilock',
  'semaphore',
  'readwrite',
  'election',
] as const;

export type ContractGroup = (typeof CONTRACT_GROUPS)[number];

export interface ContractSuiteOptions {
  /** Only these groups (default: all). Split them over files to run them in parallel. */
  readonly only?: readonly ContractGroup[];
  /** Every group but these. */
  readonly skip?: readonly ContractGroup[];
  /** The title of the outer `describe` (default: `<name> backend: contract`). */
  readonly title?: string;
}

const GROUPS: Record<ContractGroup, [string, (runner: Runner, info: SubjectInfo) => void]> = {
  lock: ['lock', lockContract],
  capabilities: ['declared capabilities', capabilitiesContract],
  expiry: ['expiry', expiryContract],
  'server-down': ['server down', serverDownContract],
  configuration: ['validation, configure() and shutdown()', configurationContract],
  multilock: ['several locks at once', multiLockContract],
  semaphore: ['semaphore', semaphoreContract],
  readwrite: ['read-write lock', readWriteContract],
  election: ['leader election', electionContract],
};

function checkGroups(option: 'only' | 'skip', value: unknown): readonly ContractGroup[] {
  if (value === undefined) return option === 'only' ? CONTRACT_GROUPS : [];
  const known: readonly string[] = CONTRACT_GROUPS;
  if (!Array.isArray(value) || value.some((each) => !known.includes(each as string))) {
    throw new TypeError(
      `Invalid '${option}': ${JSON.stringify(value)}; expected an array of ${CONTRACT_GROUPS.map((g) => `'${g}'`).join(', ')}`,
    );
  }
  return value as ContractGroup[];
}

/**
 * Registers the contract suite for `subject` with `runner`: a `describe` per group, and in each
 * the tests of what the backend declares (`capabilities`), and a refusal test for what it does
 * not. Call it at the top level of a test file (where `describe` may be called).
 *
 * @example
 * // Vitest (or Jest: the same names)
 * import { afterAll, afterEach, beforeAll, describe, it } from 'vitest';
 * runContractSuite({ describe, it, beforeAll, afterAll, afterEach }, {
 *   backend: MY_BACKEND,
 *   createClient: () => new MyClient(process.env.MY_SERVER),
 *   closeClient: (client) => client.close(),
 * });
 */
export function runContractSuite<C extends object>(
  runner: ContractRunner,
  subject: ContractSubject<C>,
  options: ContractSuiteOptions = {},
): void {
  const run = runnerOf(runner);
  if (
    typeof subject !== 'object' ||
    subject === null ||
    !(subject.backend instanceof BackendDefinition)
  ) {
    throw new TypeError(
      `Invalid 'backend': ${String((subject as { backend?: unknown } | null)?.backend)}; expected the registered backend (what backends.register() returns)`,
    );
  }
  for (const key of ['createClient', 'closeClient'] as const) {
    if (typeof subject[key] !== 'function') {
      throw new TypeError(`Invalid '${key}': ${typeof subject[key]}; expected a function`);
    }
  }
  const only = checkGroups('only', options.only);
  const skip = checkGroups('skip', options.skip);
  const info = infoOf(subject as ContractSubject);
  const groups = CONTRACT_GROUPS.filter(
    (group) =>
      only.includes(group) &&
      !skip.includes(group) &&
      // Without a client to a dead port there is nothing to run (a backend with no server).
      (group !== 'server-down' || subject.deadClient !== undefined),
  );
  if (groups.length === 0) return; // no empty describe: runners fail those
  run.describe(options.title ?? `${info.name} backend: contract`, () => {
    for (const group of groups) {
      const [title, define] = GROUPS[group];
      run.describe(title, () => define(run, info));
    }
  });
}
