import { Inject, Optional, UseInterceptors } from '@nestjs/common';
import { LockInterceptor } from './lock.interceptor.js';
import type { LockService } from './lock.service.js';
import {
  DEFAULT_REGISTRATION,
  getLockServiceToken,
  LOCKED_METADATA,
  lockServiceProperty,
} from './sherlock.constants.js';
import type { LockedDecoratorOptions } from './sherlock.interfaces.js';
import { nestMessages } from './sherlock.messages.js';
import { checkPrimitiveWithNames, validateDecoratorOptions } from './sherlock.options.js';

/**
 * A lock name, or a function of the method's arguments (after pipes, on handlers). Several names
 * (an array, or a function returning one) are taken together as one `MultiLock`: every lock or
 * none, in one canonical order, within one `timeout`.
 */
export type LockName<A extends unknown[] = never[]> =
  string | readonly string[] | ((...args: A) => string | readonly string[]);

/** Whether `value` is a lock name or a non-empty array of them (each checked by the backend). */
const isNameOrNames = (value: unknown): value is string | readonly string[] =>
  (typeof value === 'string' && value.length > 0) ||
  (Array.isArray(value) &&
    value.length > 0 &&
    value.every((each) => typeof each === 'string' && each.length > 0));

/** What `@Locked` records under `LOCKED_METADATA` on the method. */
export interface LockedMetadata {
  readonly name: LockName<unknown[]>;
  readonly options: LockedDecoratorOptions;
  /** The registration whose `LockService` takes the lock. */
  readonly registration: string;
}

type AsyncMethod = (...args: never[]) => Promise<unknown>;

/**
 * What the `target` of a `@Locked` method must be when its name function cannot take the
 * method's arguments: a type no class is, so that the mistake is a compile error whose message
 * shows the method's parameters.
 */
export interface LockedNameMismatch<MethodParameters extends readonly unknown[]> {
  readonly '@Locked: the name function must accept the arguments of the method, which are': MethodParameters;
}

/**
 * What the `target` of a `@Locked(..., { onBusy: 'skip' })` method must be when the method's
 * promise cannot resolve `undefined` (which a skipped call resolves): declare it
 * `Promise<T | undefined>` (or `Promise<void>`).
 */
export interface LockedSkipNeedsUndefined<Result> {
  readonly "@Locked with onBusy: 'skip' resolves undefined when busy: declare the method Promise<T | undefined>, not": Promise<Result>;
}

/**
 * What `@Locked` checks of the method `M` it decorates, given its name function's parameters `A`
 * and whether it may skip: `object` (any class) if all is well, else a type no class is.
 */
export type LockedTarget<
  A extends unknown[],
  Skip extends boolean,
  M extends (...args: never[]) => Promise<unknown>,
> = [(...args: A) => unknown] extends [(...args: Parameters<M>) => unknown]
  ? Skip extends true
    ? undefined extends Awaited<ReturnType<M>>
      ? object
      : LockedSkipNeedsUndefined<Awaited<ReturnType<M>>>
    : object
  : LockedNameMismatch<Parameters<M>>;

/**
 * The method decorator `@Locked(name, options)` returns. It type-checks what it decorates: a
 * method returning a promise (the wrapper always returns one), whose arguments the name
 * function (`A`: its parameters) accepts, and, with `onBusy: 'skip'` (`Skip`), whose promise may
 * resolve `undefined`. A mistake is a compile error at the decorator.
 */
export type LockedDecorator<A extends unknown[] = unknown[], Skip extends boolean = false> = <
  M extends (...args: never[]) => Promise<unknown>,
>(
  target: LockedTarget<A, Skip, M>,
  propertyKey: string | symbol,
  descriptor: TypedPropertyDescriptor<M>,
) => TypedPropertyDescriptor<M>;

/** Whether `@Locked` options `O` (as written at the call) say `onBusy: 'skip'` (or may). */
export type LockedSkips<O> = 'onBusy' extends keyof O
  ? 'skip' extends O['onBusy' & keyof O]
    ? true
    : false
  : false;

/**
 * Runs every call of the decorated (async) method while holding a distributed lock, through the
 * `LockService` of the `SherlockModule` registration named `name` in the options (the unnamed one
 * by default). Works on any provider method (services, `@Cron` jobs, event handlers, queue
 * processors) and on controller / resolver / microservice / gateway handlers. A lock error that
 * reaches a handler is answered as its transport expects (the module's `errorMapping`, see
 * docs/errors.md): HTTP 409 with `Retry-After` for a busy lock, 503 for a lock server that is
 * down; GraphQL `extensions.code`; an `RpcException` / `WsException` with `code`. In a `@Cron`
 * job or an event handler nothing maps it: the error propagates to the scheduler / emitter, which
 * logs it. Nested calls on the same lock within one async call chain re-enter instead of
 * deadlocking.
 *
 * The class's instances get the registration's `LockService` from Nest, injected as a hidden
 * property when Nest creates them (so it works right after `Test.createTestingModule().compile()`,
 * and two applications in one process each use their own): the class must be a provider or
 * controller of a module that sees the registration (imported, or `isGlobal`).
 *
 * @example
 * @Locked('nightly-report', { wait: false, onBusy: 'skip', atLeastFor: 30_000 })
 * @Cron('0 3 * * *')
 * async nightlyReport() { ... }
 *
 * @Patch(':id')
 * @Locked((id: string) => `order:${id}`)
 * async update(@Param('id') id: string, @Body() dto: UpdateOrderDto): Promise<Order> { ... }
 *
 * @Locked((from: string, to: string) => [`account:${from}`, `account:${to}`])
 * async transfer(from: string, to: string, amount: number) { ... }
 *
 * // At most 4 report builds at once (a semaphore); reads together, writes alone (read-write).
 * @Locked('reports', { limit: 4 })
 * async buildReport() { ... }
 * @Locked('catalog', { mode: 'read' })
 * async listProducts() { ... }
 * @Locked('catalog', { mode: 'write' })
 * async importProducts() { ... }
 */
export function Locked<
  A extends unknown[] = unknown[],
  const O extends LockedDecoratorOptions = Record<never, never>,
>(name: LockName<A>, options?: O): LockedDecorator<A, LockedSkips<O>>;
export function Locked(
  name: LockName<unknown[]>,
  options: LockedDecoratorOptions = {},
): LockedDecorator<unknown[], boolean> {
  if (typeof name !== 'function' && !isNameOrNames(name)) {
    throw new TypeError(nestMessages.badLockedName(name));
  }
  const checked = validateDecoratorOptions(options);
  if (Array.isArray(name)) checkPrimitiveWithNames(checked, 'an array of names');
  const registration = checked.name ?? DEFAULT_REGISTRATION;
  const { name: _registration, service: _service, ...lockedOptions } = checked;
  const property = lockServiceProperty(registration);

  return <T>(
    target: object,
    propertyKey: string | symbol,
    descriptor: TypedPropertyDescriptor<T>,
  ) => {
    const original: unknown = descriptor.value;
    const methodName = `${target.constructor.name}.${String(propertyKey)}`;
    if (typeof original !== 'function') throw new TypeError(nestMessages.notAMethod(methodName));

    const wrapped = {
      async [original.name](this: unknown, ...args: unknown[]): Promise<unknown> {
        const service =
          typeof this === 'object' && this !== null
            ? (this as Record<symbol, LockService | undefined>)[property]
            : undefined;
        if (!service) throw new Error(nestMessages.notInitialised(registration, methodName));
        const lockName =
          typeof name === 'function' ? (name as (...a: unknown[]) => unknown)(...args) : name;
        if (!isNameOrNames(lockName)) {
          throw new TypeError(nestMessages.badLockName(methodName, JSON.stringify(lockName)));
        }
        if (Array.isArray(lockName)) {
          checkPrimitiveWithNames(lockedOptions, `the name function of ${methodName}`);
        }
        return service.runLocked(
          lockName,
          () => (original as AsyncMethod).apply(this, args as never[]),
          lockedOptions,
        );
      },
    }[original.name] as AsyncMethod;

    // Keep every other decorator's metadata (routes, @Cron, @OnEvent, ...), whichever side of
    // @Locked they are on: those above write on `wrapped`, those below wrote on `original`.
    for (const key of Reflect.getMetadataKeys(original)) {
      Reflect.defineMetadata(key, Reflect.getMetadata(key, original), wrapped);
    }
    Reflect.defineMetadata(
      LOCKED_METADATA,
      {
        name: name as LockName<unknown[]>,
        options: checked,
        registration,
      } satisfies LockedMetadata,
      wrapped,
    );
    descriptor.value = wrapped as T;
    // Nest injects the registration's LockService into every instance it creates (optional, so
    // that a missing registration gets this library's message, at bootstrap or at the call).
    Inject(getLockServiceToken(registration))(target, property);
    Optional()(target, property);
    // On HTTP handlers, the interceptor ties the wait to the request (a client that disconnects
    // cancels it); the module's LockErrorInterceptor answers lock errors on every transport.
    UseInterceptors(LockInterceptor)(target, propertyKey, descriptor);
    return descriptor;
  };
}
