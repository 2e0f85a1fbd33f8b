/**
 * Bad options fail the application's start (compile()) with a TypeError / RangeError naming the
 * option; bad @Locked options fail when the class is defined.
 */
import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  LockService,
  Locked,
  type LockedDecoratorOptions,
  MemoryStore,
  SherlockModule,
  type SherlockModuleOptions,
} from 'nestjs-sherlock';
import { describe, expect, it } from 'vitest';

import { redisUrl } from '../support/env.js';
import { rejectionOf, useApps } from './helpers.js';

const apps = useApps();

/** Options as a user might write them in plain JavaScript (not type-checked). */
type Untyped = Record<string, unknown>;

const compileWith = (options: Untyped) =>
  Test.createTestingModule({
    imports: [SherlockModule.forRoot(options as SherlockModuleOptions)],
  }).compile();

interface InvalidCase {
  readonly what: string;
  readonly options: () => Untyped;
  readonly error: typeof TypeError | typeof RangeError;
  readonly message: RegExp;
}

const invalid: InvalidCase[] = [
  {
    what: "backend 'nope'",
    options: () => ({ backend: 'nope' }),
    error: RangeError,
    message: /Invalid option 'backend': got "nope"/,
  },
  {
    what: 'expire -1',
    options: () => ({ backend: 'memory', expire: -1 }),
    error: RangeError,
    message: /Invalid option 'expire': got -1/,
  },
  {
    what: 'timeout NaN',
    options: () => ({ backend: 'memory', timeout: Number.NaN }),
    error: RangeError,
    message: /Invalid option 'timeout': got NaN/,
  },
  {
    what: 'the unknown key retry_interval',
    options: () => ({ backend: 'memory', retry_interval: 50 }),
    error: TypeError,
    message: /Unknown option 'retry_interval' for SherlockModule options.*retryInterval/,
  },
  {
    what: 'a client of the wrong library for the backend',
    options: () => ({ backend: 'redis', client: new MemoryStore() }),
    error: TypeError,
    message: /Invalid option 'client': the redis backend needs a client of the ioredis library/,
  },
  {
    what: 'both client and connection',
    options: () => ({ backend: 'memory', client: new MemoryStore(), connection: redisUrl() }),
    error: TypeError,
    message: /either 'client'.*or 'connection'.*not both/,
  },
  {
    what: 'neither backend nor client',
    options: () => ({ expire: 1_000 }),
    error: TypeError,
    message: /Invalid option 'backend': got undefined/,
  },
  {
    what: 'a connection for the memory backend (it has no server)',
    options: () => ({ backend: 'memory', connection: redisUrl() }),
    error: TypeError,
    message: /Invalid option 'connection'.*the memory backend has no server/,
  },
  {
    what: 'a redis connection given as a list',
    options: () => ({ backend: 'redis', connection: [redisUrl()] }),
    error: TypeError,
    message: /Invalid option 'connection'.*a redis:\/\/ URL or ioredis options/,
  },
  {
    what: 'memcached connection options without servers',
    options: () => ({ backend: 'memcached', connection: { timeout: 1 } }),
    error: TypeError,
    message: /Invalid option 'connection\.servers'/,
  },
  {
    what: "locked: { onBusy: 'sometimes' }",
    options: () => ({ backend: 'memory', locked: { onBusy: 'sometimes' } }),
    error: TypeError,
    message: /Invalid option 'onBusy': got "sometimes"/,
  },
  {
    // 'skip' goes on the @Locked / run() calls, whose types then say they may resolve undefined.
    what: "locked: { onBusy: 'skip' } (a module-wide skip no type would show)",
    options: () => ({ backend: 'memory', locked: { onBusy: 'skip' } }),
    error: TypeError,
    message:
      /Invalid option 'locked\.onBusy': got "skip" \(a string\), expected 'throw' or nothing.*onBusy: 'skip' on each @Locked or run\(\) call/,
  },
  {
    what: 'locked.atLeastFor above the module expire',
    options: () => ({ backend: 'memory', expire: 1_000, locked: { atLeastFor: 5_000 } }),
    error: RangeError,
    message: /Invalid option 'atLeastFor': got 5000.*1000 ms/,
  },
  {
    what: 'locked.atLeastFor above locked.expire',
    options: () => ({ backend: 'memory', locked: { expire: 2_000, atLeastFor: 3_000 } }),
    error: RangeError,
    message: /Invalid option 'atLeastFor': got 3000.*2000 ms/,
  },
];

describe('module options are validated at bootstrap', () => {
  it.each(invalid)('$what fails compile()', async ({ options, error, message }) => {
    const err = await rejectionOf(compileWith(options()));
    expect(err).toBeInstanceOf(error);
    expect(err.message).toMatch(message);
  });

  it('the same options fail when built by forRootAsync', async () => {
    const compiling = Test.createTestingModule({
      imports: [
        SherlockModule.forRootAsync({
          useFactory: async () => ({ backend: 'memory', expire: -1 }),
        }),
      ],
    }).compile();
    const err = await rejectionOf(compiling);
    expect(err).toBeInstanceOf(RangeError);
    expect(err.message).toMatch(/Invalid option 'expire'/);
  });

  it('valid options at the limits start (the control case)', async () => {
    const app = await apps.start({
      imports: [
        SherlockModule.forRoot({
          backend: 'memory',
          expire: 1_000,
          timeout: 0,
          retryInterval: 0,
          locked: { atLeastFor: 1_000, onBusy: 'throw', wait: false },
        }),
      ],
    });
    expect(app.get(LockService).backend).toBe('memory');
  });
});

describe('@Locked options are validated when the class is defined', () => {
  const defineWith = (name: unknown, options: Untyped) => () => {
    @Injectable()
    class Jobs {
      @Locked(name as string, options as LockedDecoratorOptions)
      async run(): Promise<void> {}
    }
    return Jobs;
  };

  it("wait: 'no' throws a TypeError naming 'wait'", () => {
    expect(defineWith('x', { wait: 'no' })).toThrow(TypeError);
    expect(defineWith('x', { wait: 'no' })).toThrow(/Invalid option 'wait': got "no"/);
  });

  it('other bad options and names throw too', () => {
    expect(defineWith('x', { onBusy: 'later' })).toThrow(/Invalid option 'onBusy'/);
    expect(defineWith('x', { atLeastFor: -5 })).toThrow(RangeError);
    expect(defineWith('x', { service: '' })).toThrow(/Invalid option 'service'/);
    expect(defineWith('x', { retry_interval: 5 })).toThrow(/Unknown option 'retry_interval'/);
    expect(defineWith('', {})).toThrow(/non-empty string or a function/);
    expect(defineWith(42, {})).toThrow(TypeError);
  });

  it('valid options define the class (the control case)', () => {
    expect(defineWith('x', { wait: false, onBusy: 'skip', atLeastFor: 10 })).not.toThrow();
  });

  it('@Locked on something that is not a method throws', () => {
    const decorate = () => {
      class Jobs {}
      Locked('x')(Jobs.prototype, 'field', { value: 42 } as never);
    };
    expect(decorate).toThrow(/@Locked can only decorate methods; 'Jobs.field'/);
  });
});
