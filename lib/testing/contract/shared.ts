/**
 * What the semaphore, read-write and election groups share: two managers playing two processes,
 * and the refusal test of a backend that does not declare the primitive.
 */
import {
  configure,
  LockManager,
  resetConfiguration,
  UnsupportedFeatureError,
  type LockFeature,
} from '../../sherlock.js';
import { expect } from '../expect.js';
import { throwsWith, uniqueName } from '../helpers.js';
import type { Runner, SubjectInfo } from '../subject.js';

/**
 * Far above what a pushed hand-off takes (milliseconds), far below the retryInterval the waiters
 * are given (10 s), and below the fallback poll of a waiter that missed its wake-up: at least
 * 1.8 s after its last attempt, which is at most `IN_LINE_MS` before the release.
 */
export const HANDOFF_LIMIT_MS = 1_200;
/** How long a test waits for a waiter to be in line. */
export const IN_LINE_MS = 300;
/** Waiters that would not retry for 10 s: they get the lock by a pushed wake-up or not at all. */
export const POLL_NEVER = { retryInterval: 10_000 };

/** Two managers on the subject, closed after the block. */
export interface TwoManagers {
  /** "This process". */
  readonly main: LockManager;
  /** "Another process": a client of its own (the same client where not cross-process). */
  readonly other: LockManager;
  /** The clients made (one or two). */
  readonly clients: readonly object[];
}

/**
 * Registers the hooks that give a block two managers (made in beforeAll, closed in afterAll) and,
 * unless `releaseHeld` is false, release what they still hold after each test.
 */
export function useTwoManagers(
  runner: Runner,
  { subject, definition, capabilities }: SubjectInfo,
  { releaseHeld = true } = {},
): TwoManagers {
  let made: { main: LockManager; other: LockManager; clients: object[] } | undefined;
  const ready = () => {
    if (!made) throw new Error('the managers are made in beforeAll');
    return made;
  };
  runner.beforeAll(() => {
    const first = subject.createClient();
    const second = capabilities.crossProcess ? subject.createClient() : first;
    made = {
      main: new LockManager({ backend: definition, client: first }),
      other: new LockManager({ backend: definition, client: second }),
      clients: [...new Set([first, second])],
    };
  });
  if (releaseHeld) {
    runner.afterEach(async () => {
      const { main, other } = ready();
      const held = [...main.held(), ...other.held()];
      await Promise.allSettled(held.map((each) => each.release()));
    });
  }
  runner.afterAll(async () => {
    const { main, other, clients } = ready();
    await main.close();
    await other.close();
    for (const client of clients) await subject.closeClient(client);
  });
  return {
    get main() {
      return ready().main;
    },
    get other() {
      return ready().other;
    },
    get clients() {
      return ready().clients;
    },
  };
}

/** A primitive the backend may refuse, as the refusal test makes it. */
export interface Refused {
  readonly feature: LockFeature;
  /** How the error message names it: 'a semaphore', 'a read-write lock', 'leader election'. */
  readonly called: string;
  /** The test's title. */
  readonly title: string;
  /** Makes it through the manager (must throw). */
  viaManager(manager: LockManager, name: string): unknown;
  /** Makes it with `new` on the configured backend (must throw). */
  direct(name: string): unknown;
  /** The key of the lock the primitive of `name` would have taken (checked free afterwards). */
  readonly lockName?: (name: string) => string;
}

/**
 * Registers the test of a backend that does not declare `refused.feature`: both ways of making it
 * throw an UnsupportedFeatureError naming the backend, the feature and why, and nothing was taken.
 */
export function refusalContract(runner: Runner, fixture: SubjectInfo, refused: Refused): void {
  const { subject } = fixture;
  runner.afterEach(() => resetConfiguration());
  runner.it(refused.title, async () => {
    const client = subject.createClient();
    try {
      const manager = new LockManager({ backend: fixture.definition, client });
      const name = uniqueName('refused');
      const error = throwsWith(UnsupportedFeatureError, () => refused.viaManager(manager, name));
      expect(error.backend).toBe(fixture.name);
      expect(error.feature).toBe(refused.feature);
      expect(error.lockName).toBe(name);
      expect(error.reason.length).toBeGreaterThan(20);
      expect(error.message).toBe(
        `The ${fixture.name} backend does not offer ${refused.called}: ${error.reason}`,
      );
      configure({ backend: fixture.definition, client });
      const direct = throwsWith(UnsupportedFeatureError, () => refused.direct(name));
      expect(direct.message).toBe(error.message);
      // Nothing was taken: the lock of the same key is free.
      const lock = new fixture.LockClass(refused.lockName?.(name) ?? name, { client });
      expect(await lock.locked()).toBe(false);
      await manager.close();
    } finally {
      await subject.closeClient(client);
    }
  });
}
