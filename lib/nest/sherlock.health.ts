import { Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { LockService } from './lock.service.js';
import { DEFAULT_REGISTRATION, getLockServiceToken } from './sherlock.constants.js';

/** Options of `SherlockHealthIndicator.isHealthy()`. */
export interface SherlockHealthOptions {
  /** The `SherlockModule` registration to check (default: the unnamed one). */
  registration?: string;
  /** How long the round trip may take, in ms (default: the registration's `operationTimeout`). */
  timeout?: number;
}

/** What `isHealthy()` resolves: a `@nestjs/terminus` `HealthIndicatorResult`. */
export type SherlockHealthResult = Record<
  string,
  {
    status: 'up' | 'down';
    backend: string;
    registration: string;
    /** The round trip in ms (up). */
    latency?: number;
    /** Why it is down. */
    reason?: string;
    [detail: string]: unknown;
  }
>;

/**
 * A `@nestjs/terminus` health indicator for the lock backend of a `SherlockModule`
 * registration: up when the backend answers one cheap round trip (Redis `PING`, ...) in time,
 * down with the reason when it does not (a Redlock quorum below its majority is down). It takes
 * no lock, so a busy lock is never a health problem. Terminus is optional: this class does not
 * import it; its result has terminus's shape.
 *
 * @example
 * @Get('health')
 * @HealthCheck()
 * check() {
 *   return this.health.check([() => this.locks.isHealthy('locks', { timeout: 1_000 })]);
 * }
 */
@Injectable()
export class SherlockHealthIndicator {
  constructor(private readonly moduleRef: ModuleRef) {}

  async isHealthy(
    key = 'sherlock',
    options: SherlockHealthOptions = {},
  ): Promise<SherlockHealthResult> {
    const registration = options.registration ?? DEFAULT_REGISTRATION;
    let service: LockService;
    try {
      service = this.moduleRef.get<LockService>(getLockServiceToken(registration), {
        strict: false,
      });
    } catch (err) {
      throw new Error(
        `SherlockHealthIndicator: no SherlockModule registration '${registration}' (register it with SherlockModule.forRoot({ name: '${registration}', ... }))`,
        { cause: err },
      );
    }
    const health = await service.manager.ping(options.timeout);
    const base = { backend: health.backend, registration };
    if (health.up) {
      return {
        [key]: {
          status: 'up',
          ...base,
          latency: Math.round(health.latency * 10) / 10,
          ...health.details,
        },
      };
    }
    return { [key]: { status: 'down', ...base, reason: health.reason } };
  }
}
