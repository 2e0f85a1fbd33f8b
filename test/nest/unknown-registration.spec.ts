/**
 * A registration name that no SherlockModule has fails the application's start, not the first
 * call, wherever it is named: `@Locked({ name })` on a singleton, on a request-scoped provider
 * (Nest creates those per request, after the start) or on a controller, and
 * `@InjectLockService(name)`. (test/nest/locked.spec.ts covers the singleton's message.)
 */
import { Controller, Injectable, Post, Scope } from '@nestjs/common';
import { ContextIdFactory } from '@nestjs/core';
import { InjectLockService, Locked, LockService, SherlockModule } from 'nestjs-sherlock';
import { describe, expect, it } from 'vitest';

import { rejectionOf, useApps } from './helpers.js';

const apps = useApps();
const sherlock = () => [
  SherlockModule.forRoot({ backend: 'memory', namespace: 'unknown-registration' }),
  SherlockModule.forRoot({ name: 'audit', backend: 'memory', namespace: 'audit' }),
];

@Injectable({ scope: Scope.REQUEST })
class PerRequestUnknown {
  @Locked('per-request', { name: 'no-such-registration' })
  async run(): Promise<string> {
    return 'ran';
  }
}

@Injectable({ scope: Scope.REQUEST })
class PerRequestKnown {
  @Locked('per-request', { name: 'audit' })
  async run(): Promise<string> {
    return 'ran';
  }
}

@Controller('orders')
class OrdersController {
  @Post()
  @Locked('orders', { name: 'orders' })
  async create(): Promise<string> {
    return 'created';
  }
}

@Injectable()
class Reports {
  constructor(@InjectLockService('reporting') readonly locks: LockService) {}
}

@Injectable()
class Audited {
  constructor(@InjectLockService('audit') readonly locks: LockService) {}
}

describe('an unknown registration name fails the start', () => {
  it('@Locked({ name }) on a request-scoped provider, naming the method and the registration', async () => {
    const err = await rejectionOf(
      apps.start({ imports: sherlock(), providers: [PerRequestUnknown] }),
    );
    expect(err.message).toMatch(
      /@Locked on PerRequestUnknown\.run found no LockService of the SherlockModule registration 'no-such-registration'/,
    );
  });

  it('@Locked({ name }) on a controller handler', async () => {
    const err = await rejectionOf(
      apps.start({ imports: sherlock(), controllers: [OrdersController] }),
    );
    expect(err.message).toMatch(
      /@Locked on OrdersController\.create found no LockService of the SherlockModule registration 'orders'/,
    );
  });

  it('@InjectLockService(name), naming the token of the missing registration', async () => {
    const err = await rejectionOf(apps.start({ imports: sherlock(), providers: [Reports] }));
    expect(err.message).toMatch(/Reports/);
    expect(err.message).toMatch(/SherlockLockService:reporting/);
  });

  it('a known name starts, and a request-scoped @Locked method takes its lock (the control case)', async () => {
    const app = await apps.start({
      imports: sherlock(),
      providers: [PerRequestKnown, Audited],
    });
    expect(app.get(Audited).locks.registration).toBe('audit');
    const contextId = ContextIdFactory.create();
    const perRequest = await app.resolve(PerRequestKnown, contextId);
    expect(await perRequest.run()).toBe('ran');
  });
});
