import { createRequire } from 'node:module';
import { Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { ModuleRef } from '@nestjs/core';
import { LOCK_EVENT_TYPES, type LockEvent, type LockEventType } from '../core/events.js';
import type { LockService } from './lock.service.js';

const requireFromHere = createRequire(import.meta.url);

/** What a registration's events look like on `@nestjs/event-emitter`: the lock event and the registration. */
export type SherlockEmittedEvent = LockEvent & {
  /** The `SherlockModule` registration (`'default'` for the unnamed one). */
  readonly registration: string;
};

/**
 * The `@nestjs/event-emitter` event name of each lock event type: `sherlock.<type>`, e.g.
 * `@OnEvent('sherlock.lost')` (or `'sherlock.*'` with wildcards on).
 */
export const SHERLOCK_EVENTS: { readonly [E in LockEventType]: `sherlock.${E}` } = Object.freeze({
  waiting: 'sherlock.waiting',
  acquired: 'sherlock.acquired',
  busy: 'sherlock.busy',
  timeout: 'sherlock.timeout',
  extended: 'sherlock.extended',
  'extend-failed': 'sherlock.extend-failed',
  released: 'sherlock.released',
  lost: 'sherlock.lost',
});

/** The part of EventEmitter2 the forwarding calls. */
interface Emitter2 {
  emit(event: string, payload: unknown): unknown;
}

const ms = (value: number) => `${Math.round(value)} ms`;

/** A debug line for `event`: what a person tracing a stuck job wants to read. */
export function describeLockEvent(event: LockEvent): string {
  const lock = `lock '${event.name}' (${event.backend}${event.key === event.name ? '' : `, key ${event.key}`})`;
  const token = event.fencingToken === undefined ? '' : `, fencing token ${event.fencingToken}`;
  switch (event.type) {
    case 'waiting': {
      const holder =
        event.holderTtl === undefined
          ? ''
          : event.holderTtl < 0
            ? ', the holder has no expiry'
            : `, the holder's expiry in ${ms(event.holderTtl)}`;
      const place = event.position === undefined ? '' : `, place in line ${event.position}`;
      return `Waiting for ${lock}: held by another owner${holder}${place}; giving up in ${ms(event.timeout)}`;
    }
    case 'acquired':
      return `Acquired ${lock} after waiting ${ms(event.waited)}${token}`;
    case 'busy':
      return `${lock} is busy: not waiting (non-blocking)${event.retryAfter === undefined ? '' : `; free in ${ms(event.retryAfter)} at the latest`}`;
    case 'timeout':
      return `Gave up waiting for ${lock} after ${ms(event.waited)}: ${event.error.message}`;
    case 'extended':
      return `Extended ${lock} to ${ms(event.ttl)} from now${event.automatic ? ' (autoExtend)' : ''}, held ${ms(event.held)}${token}`;
    case 'extend-failed': {
      const why = event.error instanceof Error ? event.error.message : String(event.error);
      return `Could not extend ${lock}${event.automatic ? ' (autoExtend)' : ''}, held ${ms(event.held)}${token}: ${why}`;
    }
    case 'released':
      return `Released ${lock} after holding it ${ms(event.held)}${token}`;
    case 'lost':
      return `Lost ${lock} after holding it ${ms(event.held)}${token}: ${event.error.message}`;
  }
}

/**
 * @internal one registration's observability glue: the production warning for the memory
 * backend, debug logs of its lock events, and their forwarding to `@nestjs/event-emitter` when
 * that module is installed and registered (found at run time, never imported).
 */
export class SherlockObserver implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('SherlockModule');
  private readonly stops: (() => void)[] = [];

  constructor(
    private readonly service: LockService,
    private readonly moduleRef: ModuleRef,
  ) {}

  onApplicationBootstrap(): void {
    const { service } = this;
    if (service.backend === 'memory' && process.env['NODE_ENV'] === 'production') {
      this.logger.warn(
        `The SherlockModule registration '${service.registration}' uses the memory backend with NODE_ENV=production: its locks are held in this process only, so two instances of the application do not exclude each other; use a server backend (redis, etcd, ...) in production`,
      );
    }
    if (Logger.isLevelEnabled('debug')) {
      // A loss is logged at error already (by LockService).
      const types = LOCK_EVENT_TYPES.filter((type) => type !== 'lost');
      this.listen((event) => this.logger.debug(describeLockEvent(event)), types);
    }
    const emitter = this.findEmitter();
    if (emitter) {
      const { registration } = service;
      this.listen(
        (event) => emitter.emit(SHERLOCK_EVENTS[event.type], { ...event, registration }),
        LOCK_EVENT_TYPES,
      );
    }
  }

  onApplicationShutdown(): void {
    for (const stop of this.stops.splice(0)) stop();
  }

  private listen(listener: (event: LockEvent) => void, types: readonly LockEventType[]): void {
    const { manager } = this.service;
    for (const type of types) {
      manager.on(type, listener);
      this.stops.push(() => manager.off(type, listener));
    }
  }

  /** The application's EventEmitter2, if `@nestjs/event-emitter` is installed and registered. */
  private findEmitter(): Emitter2 | undefined {
    let EventEmitter2: unknown;
    try {
      ({ EventEmitter2 } = requireFromHere('@nestjs/event-emitter') as { EventEmitter2: unknown });
    } catch {
      return undefined; // not installed
    }
    try {
      return this.moduleRef.get(EventEmitter2 as new () => Emitter2, { strict: false });
    } catch {
      return undefined; // installed, but EventEmitterModule is not imported
    }
  }
}
