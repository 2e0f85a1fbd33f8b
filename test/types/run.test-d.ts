/**
 * `LockService.run()` resolves `T` only when `fn` surely ran; checked by types.spec.ts (see
 * locked.test-d.ts for the `@ts-expect-error: text` convention).
 */
import type { BaseLock, LockedOptions, LockService, MultiLock } from 'nestjs-sherlock';
import { expectTypeOf } from 'vitest';

declare const locks: LockService;
declare const options: LockedOptions;

// No options, or onBusy 'throw': fn ran (a busy lock rejects), so T.
expectTypeOf(locks.run('a', () => 1)).toEqualTypeOf<Promise<number>>();
expectTypeOf(locks.run('a', async () => 'x', { timeout: 100 })).toEqualTypeOf<Promise<string>>();
expectTypeOf(locks.run('a', async () => 'x', { onBusy: 'throw' })).toEqualTypeOf<Promise<string>>();
expectTypeOf(locks.run(['a', 'b'], async () => true)).toEqualTypeOf<Promise<boolean>>();

// onBusy 'skip': a busy lock resolves undefined without calling fn.
expectTypeOf(locks.run('a', async () => 'x', { wait: false, onBusy: 'skip' })).toEqualTypeOf<
  Promise<string | undefined>
>();
expectTypeOf(locks.run(['a', 'b'], () => 2, { onBusy: 'skip' })).toEqualTypeOf<
  Promise<number | undefined>
>();

// Options whose onBusy is not known (a LockedOptions variable): it may skip.
expectTypeOf(locks.run('a', async () => 'x', options)).toEqualTypeOf<Promise<string | undefined>>();

// fn gets the lock: a BaseLock for one name, the MultiLock for several.
void locks.run('a', (lock) => expectTypeOf(lock).toEqualTypeOf<BaseLock>());
void locks.run(['a', 'b'], (lock) => expectTypeOf(lock).toEqualTypeOf<MultiLock>());

export async function skipped(): Promise<number> {
  // @ts-expect-error: Type 'number | undefined' is not assignable to type 'number'
  const n: number = await locks.run('a', async () => 1, { onBusy: 'skip' });
  return n;
}

// The lock objects' own `using` always waits (or rejects): T.
declare const lock: BaseLock;
declare const multi: MultiLock;
expectTypeOf(lock.using(async () => 1)).toEqualTypeOf<Promise<number>>();
expectTypeOf(multi.using(() => 'x')).toEqualTypeOf<Promise<string>>();

// @ts-expect-error: No overload matches this call
void locks.run('a', async () => 1, { onBusy: 'maybe' });
