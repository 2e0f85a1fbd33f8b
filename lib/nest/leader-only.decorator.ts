import { Inject, Optional } from '@nestjs/common';
import {
  getLeaderServiceToken,
  LEADER_ONLY_METADATA,
  leaderServiceProperty,
} from './leader.constants.js';
import type { LeaderService } from './leader.service.js';

type AnyMethod = (...args: never[]) => unknown;

/** What `@LeaderOnly` records under `LEADER_ONLY_METADATA` on the method. */
export interface LeaderOnlyMetadata {
  /** The `LeaderElectionModule` whose leader runs the method (`undefined`: the unnamed one). */
  readonly election: string | undefined;
}

/**
 * Runs the decorated method only on the replica that leads the election (the unnamed
 * `LeaderElectionModule`, or the one registered with `name: election`); elsewhere the call is
 * skipped and resolves `undefined` (the method is made async). Typically on a `@Cron` /
 * `@Interval` job of `@nestjs/schedule` or an `@OnEvent` handler, on either side of them: their
 * metadata is kept. Whether this replica leads is known locally (no round trip); while the
 * method runs, `leaderService.leadership?.signal` aborts if the leadership is lost.
 *
 * @example
 * @LeaderOnly()
 * @Cron(CronExpression.EVERY_MINUTE)
 * async purgeExpiredSessions() { ... } // on one replica at a time
 */
export function LeaderOnly(election?: string): MethodDecorator {
  if (election !== undefined && (typeof election !== 'string' || election.length === 0)) {
    throw new TypeError(
      `@LeaderOnly(election): got ${JSON.stringify(election)}, expected the name of a LeaderElectionModule registration (a non-empty string) or nothing`,
    );
  }
  const property = leaderServiceProperty(election);
  return <T>(
    target: object,
    propertyKey: string | symbol,
    descriptor: TypedPropertyDescriptor<T>,
  ) => {
    const original: unknown = descriptor.value;
    const methodName = `${target.constructor.name}.${String(propertyKey)}`;
    if (typeof original !== 'function') {
      throw new TypeError(`@LeaderOnly can only decorate methods; '${methodName}' is not a method`);
    }
    const wrapped = {
      async [original.name](this: unknown, ...args: unknown[]): Promise<unknown> {
        const service =
          typeof this === 'object' && this !== null
            ? (this as Record<symbol, LeaderService | undefined>)[property]
            : undefined;
        if (!service) throw new Error(notInitialised(election, methodName));
        if (!service.isLeader()) return undefined;
        return (original as AnyMethod).apply(this, args as never[]);
      },
    }[original.name] as AnyMethod;
    // Keep every other decorator's metadata (@Cron, @OnEvent, ...), whichever side they are on.
    for (const key of Reflect.getMetadataKeys(original)) {
      Reflect.defineMetadata(key, Reflect.getMetadata(key, original), wrapped);
    }
    Reflect.defineMetadata(
      LEADER_ONLY_METADATA,
      { election } satisfies LeaderOnlyMetadata,
      wrapped,
    );
    descriptor.value = wrapped as T;
    Inject(getLeaderServiceToken(election))(target, property);
    Optional()(target, property);
    return descriptor;
  };
}

/** The message of a `@LeaderOnly` method whose class got no `LeaderService`. */
export function notInitialised(election: string | undefined, method: string): string {
  const which = election === undefined ? '' : ` named '${election}'`;
  const call = election === undefined ? '{ ... }' : `{ name: '${election}', ... }`;
  return `@LeaderOnly on ${method} found no LeaderService${which}: import LeaderElectionModule.forRoot(${call}) with isGlobal: true in your application module, or in the module that provides ${method.split('.')[0]}; the class must be a provider created by Nest (not with new)`;
}

/** Injects the `LeaderService` of an election (the unnamed one by default). */
export const InjectLeaderService = (name?: string): PropertyDecorator & ParameterDecorator =>
  Inject(getLeaderServiceToken(name));
