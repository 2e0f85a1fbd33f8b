/**
 * Property-based test (fast-check): random sequences of acquire / release / extend / locked() /
 * time passing, from four lock objects on two clients and two names, checked against a reference
 * model of who holds what until when, on every backend. Near an expiry either outcome is accepted
 * (the server's clock and ours differ by a round trip) and the model follows what happened.
 * Invariants: never two holders; only the holder can release or extend; fencing tokens strictly
 * increase per name. FC_RUNS scales the number of sequences (default 8 per backend).
 */
import fc from 'fast-check';
import { type BaseLock, LockReleaseError } from 'nestjs-sherlock';
import { describe, expect, it } from 'vitest';

import { type BackendFixture, fixtures, uniqueName } from '../support/backends.js';

const RUNS = Number(process.env['FC_RUNS'] ?? 8);

type Op = { kind: 'acquire' | 'release' | 'extend' | 'locked' | 'sleep'; obj: number };

const opArb = fc.record({
  kind: fc.constantFrom('acquire', 'acquire', 'release', 'extend', 'locked', 'sleep'),
  obj: fc.integer({ min: 0, max: 3 }),
}) as fc.Arbitrary<Op>;

/** Per backend: the expire used, the margin around it where both outcomes are fine, the sleep. */
function timing(fixture: BackendFixture) {
  // Redlock gives each server a tenth of the expiry to answer (Redlock's rule): with 400 ms that
  // is 50 ms, which a loaded machine misses and the lock rightly fails. The coarse timing gives it 200.
  const coarse = fixture.capabilities.expiry.granularity >= 1_000 || fixture.name === 'redlock';
  return coarse
    ? { expire: 2_000, margin: 1_300, sleep: 700 }
    : { expire: 400, margin: 150, sleep: 250 };
}

describe.each(fixtures)('model-based sequences: $name', (fixture: BackendFixture) => {
  it(`${RUNS} random sequences agree with the model`, async () => {
    const { expire, margin, sleep } = timing(fixture);
    // Memory locks are per store: both "clients" share one (another store is another world).
    const first = fixture.createClient();
    const clients = [first, fixture.capabilities.crossProcess ? fixture.createClient() : first];
    // A backend that declares no extend refuses it (see test/features/extend.spec.ts): the
    // sequences extend only where it is declared.
    const canExtend = fixture.capabilities.extend;
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 4, maxLength: 14 }), async (ops) => {
          const names = [uniqueName('model-a'), uniqueName('model-b')];
          const objects: BaseLock[] = [0, 1, 2, 3].map(
            (i) =>
              new fixture.LockClass(names[i % 2] ?? '', {
                client: clients[Math.floor(i / 2)],
                expire,
              }),
          );
          const owner: (number | null)[] = [null, null];
          const until: number[] = [0, 0];
          const lastToken: (bigint | null)[] = [null, null];
          const now = () => performance.now();
          /** 'held' | 'free' | 'either' as the model sees lock `n` now. */
          const state = (n: number) => {
            if (owner[n] === null) return 'free';
            const left = (until[n] ?? 0) - now();
            if (left > margin) return 'held';
            if (left < -margin) return 'free';
            return 'either';
          };
          try {
            for (const { kind, obj } of ops) {
              const lock = objects[obj] as BaseLock;
              const n = obj % 2;
              const before = state(n);
              const sentAt = now();
              switch (kind) {
                case 'sleep':
                  await new Promise((resolve) => setTimeout(resolve, sleep));
                  break;
                case 'acquire': {
                  if (lock.isAcquired) break; // one holding per object
                  const got = await lock.acquire(false);
                  if (before === 'held')
                    expect(got, `${kind} ${obj}: held by ${owner[n]}`).toBe(false);
                  if (before === 'free') expect(got, `${kind} ${obj}: free`).toBe(true);
                  if (got) {
                    owner[n] = obj;
                    until[n] = sentAt + expire;
                    if (lock.fencingToken !== undefined) {
                      const token = BigInt(lock.fencingToken);
                      if (lastToken[n] !== null) expect(token).toBeGreaterThan(lastToken[n] ?? 0n);
                      lastToken[n] = token;
                    }
                  }
                  break;
                }
                case 'release':
                case 'extend': {
                  if (kind === 'extend' && !canExtend) break;
                  const mine = owner[n] === obj && lock.isAcquired;
                  const result = await (kind === 'release' ? lock.release() : lock.extend()).then(
                    () => 'ok' as const,
                    (err: unknown) => err,
                  );
                  if (!mine || (before === 'free' && owner[n] === obj)) {
                    // Not its lock (or long expired): refused. (Expired but not yet taken by
                    // anyone may still be released on some backends: that is 'either'.)
                    if (!mine)
                      expect(result, `${kind} ${obj} by a non-owner`).toBeInstanceOf(
                        LockReleaseError,
                      );
                  } else if (before === 'held') {
                    expect(result, `${kind} ${obj} by the owner`).toBe('ok');
                  }
                  if (result === 'ok') {
                    if (kind === 'release') owner[n] = null;
                    else until[n] = sentAt + expire;
                  } else if (owner[n] === obj) {
                    owner[n] = null; // it had expired
                  }
                  break;
                }
                case 'locked': {
                  const locked = await lock.locked();
                  if (before === 'held') expect(locked, `locked() ${obj}`).toBe(true);
                  if (before === 'free' && owner[n] === null) {
                    // Free in the model: nobody holds it (expired holders are 'either').
                    expect(locked, `locked() ${obj}`).toBe(false);
                  }
                  break;
                }
              }
              // Never two holders: of the objects that believe they hold a name, at most one
              // is the model's owner, and every other one is past its expiry.
              for (const name of [0, 1]) {
                const believers = objects.filter(
                  (o, i) => i % 2 === name && o.isAcquired && owner[name] === i,
                );
                expect(believers.length).toBeLessThanOrEqual(1);
              }
            }
          } finally {
            await Promise.allSettled(objects.filter((o) => o.isAcquired).map((o) => o.release()));
          }
        }),
        { numRuns: RUNS, endOnFailure: true },
      );
    } finally {
      await Promise.all([...new Set(clients)].map((client) => fixture.closeClient(client)));
    }
  });
});
