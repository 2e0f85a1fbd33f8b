/**
 * @Locked on provider methods, on a real Redis (the unnamed registration) and a real Etcd (the
 * 'audit' registration): pass-through of `this`, results and errors, mutual exclusion,
 * re-entrancy, currentLock(), lock names from arguments, busy behaviour and atLeastFor.
 */
import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  type BaseLock,
  currentLock,
  EtcdLock,
  LockBusyError,
  Locked,
  LockService,
  LockTimeoutError,
  RedisLock,
  SherlockModule,
} from 'nestjs-sherlock';
import { performance } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';

import { etcdHosts, redisUrl } from '../support/env.js';
import {
  delay,
  gate,
  type Gate,
  rejectionOf,
  uniqueName,
  useApps,
  useProbe,
  waitFor,
} from './helpers.js';

const apps = useApps();
const redis = useProbe('redis');
const etcd = useProbe('etcd');
/** Lock names in the decorators are fixed; this per-run namespace keeps the keys unique. */
const NAMESPACE = uniqueName('locked');
const AUDIT_NAMESPACE = uniqueName('audit');

const sherlock = () => [
  SherlockModule.forRoot({
    backend: 'redis',
    connection: redisUrl(),
    namespace: NAMESPACE,
    retryInterval: 10,
  }),
  SherlockModule.forRoot({
    name: 'audit',
    backend: 'etcd',
    connection: etcdHosts(),
    namespace: AUDIT_NAMESPACE,
  }),
];

/** Starts an application with both registrations and `Provider`; returns its instance. */
async function start<T>(Provider: new (...args: never[]) => T): Promise<T> {
  const app = await apps.start({ imports: sherlock(), providers: [Provider] });
  return app.get(Provider);
}

const heldOnRedis = (name: string) => redis.isLocked(name, NAMESPACE);

@Injectable()
class Greeter {
  readonly greeting = 'hello';
  readonly failure = new Error('greeting failed');

  @Locked('greeter')
  async greet(name: string): Promise<string> {
    return `${this.greeting} ${name}`;
  }

  @Locked('greeter')
  async fail(): Promise<never> {
    throw this.failure;
  }
}

@Injectable()
class Counter {
  value = 0;

  /** Read, wait, write: loses updates unless the calls are serialised. */
  private async increment(): Promise<void> {
    const seen = this.value;
    await delay(5);
    this.value = seen + 1;
  }

  @Locked('counter')
  async lockedIncrement(): Promise<void> {
    await this.increment();
  }

  async unlockedIncrement(): Promise<void> {
    await this.increment();
  }
}

@Injectable()
class Nested {
  readonly events: string[] = [];

  @Locked('nested')
  async outer(tag: string): Promise<void> {
    this.events.push(`${tag}:outer-start`);
    await this.inner(tag);
    this.events.push(`${tag}:outer-end`);
  }

  // A short timeout: if the nested call did not re-enter, it would time out, not hang.
  @Locked('nested', { timeout: 1_000 })
  async inner(tag: string): Promise<void> {
    this.events.push(`${tag}:inner`);
    await delay(200);
  }
}

@Injectable()
class Current {
  @Locked('current')
  async outer(): Promise<{ outer?: BaseLock; inner?: BaseLock; after?: BaseLock }> {
    const outer = currentLock();
    const inner = await this.inner();
    return { outer, inner, after: currentLock() };
  }

  @Locked('current-inner')
  async inner(): Promise<BaseLock | undefined> {
    return currentLock();
  }
}

@Injectable()
class Orders {
  readonly events: string[] = [];
  readonly gates = new Map<string, Gate>();

  /** Holds the lock until the test opens the gate of `tag`. */
  @Locked((id: string) => `order:${id}`)
  async process(id: string, tag: string): Promise<string> {
    this.events.push(`${tag}:start`);
    await this.gateOf(tag).promise;
    this.events.push(`${tag}:end`);
    return `${id}/${tag}`;
  }

  gateOf(tag: string): Gate {
    let found = this.gates.get(tag);
    if (!found) {
      found = gate();
      this.gates.set(tag, found);
    }
    return found;
  }
}

@Injectable()
class Busy {
  runs = 0;

  @Locked('busy', { wait: false })
  async throwAtOnce(): Promise<void> {
    this.runs += 1;
  }

  @Locked('busy', { timeout: 300 })
  async waitBriefly(): Promise<void> {
    this.runs += 1;
  }

  @Locked('busy', { wait: false, onBusy: 'skip' })
  async skip(): Promise<string | undefined> {
    this.runs += 1;
    return 'ran';
  }
}

@Injectable()
class Lingering {
  @Locked('linger', { atLeastFor: 2_000 })
  async quick(): Promise<string> {
    return 'done';
  }
}

@Injectable()
class Audited {
  readonly release = gate();

  @Locked('audited', { name: 'audit' })
  async record(): Promise<BaseLock | undefined> {
    const lock = currentLock();
    await this.release.promise;
    return lock;
  }
}

@Injectable()
class Gated {
  readonly release = gate();

  @Locked('gated')
  async hold(): Promise<BaseLock | undefined> {
    const lock = currentLock();
    await this.release.promise;
    return lock;
  }
}

@Injectable()
class Unregistered {
  @Locked('nowhere', { name: 'no-such-registration' })
  async run(): Promise<string> {
    return 'ran';
  }
}

@Injectable()
class AuditedByService {
  @Locked('audited-old-spelling', { service: 'audit' })
  async record(): Promise<BaseLock | undefined> {
    return currentLock();
  }
}

describe('how a @Locked method finds its LockService: injected by Nest, never guessed', () => {
  it('a hand-made instance (not created by Nest) rejects with an Error naming the method, the registration and what to do', async () => {
    const err = await rejectionOf(new Greeter().greet('nobody'));
    expect(err.message).toMatch(
      /@Locked on Greeter\.greet found no LockService of the SherlockModule/,
    );
    expect(err.message).toMatch(/SherlockModule\.forRoot\(\)/);
    expect(err.message).toMatch(/isGlobal: true/);
    expect(err.message).toMatch(/created by Nest \(not with new\)/);

    const audit = await rejectionOf(new Audited().record());
    expect(audit.message).toMatch(/registration 'audit'.*forRoot\(\{ name: 'audit'/);
  });

  it('a hand-made instance is not handed the running module either (no "last started application" guess)', async () => {
    const app = await apps.start({ imports: sherlock(), providers: [Greeter] });
    expect(await app.get(Greeter).greet('injected')).toBe('hello injected');
    const err = await rejectionOf(new Greeter().greet('hand-made'));
    expect(err.message).toMatch(/@Locked on Greeter\.greet found no LockService/);
  });

  it('works right after Test.createTestingModule().compile(), without init()', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: sherlock(),
      providers: [Greeter],
    }).compile();
    try {
      expect(await moduleRef.get(Greeter).greet('compiled')).toBe('hello compiled');
      expect(await heldOnRedis('greeter')).toBe(false);
    } finally {
      await moduleRef.close();
    }
  });

  it('two applications in one process each use their own module (their own namespace)', async () => {
    const first = uniqueName('app-one');
    const second = uniqueName('app-two');
    const module = (namespace: string) => [
      SherlockModule.forRoot({ backend: 'redis', connection: redisUrl(), namespace }),
    ];
    const one = await apps.start({ imports: module(first), providers: [Gated] });
    const two = await apps.start({ imports: module(second), providers: [Gated] });
    const inOne = one.get(Gated).hold();
    const inTwo = two.get(Gated).hold();
    await waitFor(
      async () => (await redis.isLocked('gated', first)) && (await redis.isLocked('gated', second)),
      {
        what: 'each application holding gated in its own namespace',
      },
    );
    one.get(Gated).release.open();
    two.get(Gated).release.open();
    expect((await inOne)?.key).toBe(`${first}_gated`);
    expect((await inTwo)?.key).toBe(`${second}_gated`);
  });

  it('a registration name that no SherlockModule has fails the application start, naming the method', async () => {
    const err = await rejectionOf(apps.start({ imports: sherlock(), providers: [Unregistered] }));
    expect(err.message).toMatch(
      /@Locked on Unregistered\.run found no LockService of the SherlockModule registration 'no-such-registration'/,
    );
  });

  it("the pre-1.0 spelling { service: 'audit' } still names the registration", async () => {
    const app = await apps.start({ imports: sherlock(), providers: [AuditedByService] });
    const lock = await app.get(AuditedByService).record();
    expect(lock).toBeInstanceOf(EtcdLock);
    expect(lock?.key).toBe(`${AUDIT_NAMESPACE}/audited-old-spelling`);
  });
});

describe('@Locked on a provider method', () => {
  it('keeps `this`, the method name, the result and the thrown error', async () => {
    const greeter = await start(Greeter);
    expect(greeter.greet.name).toBe('greet');
    expect(await greeter.greet('bob')).toBe('hello bob');
    expect(await rejectionOf(greeter.fail())).toBe(greeter.failure);
    expect(await heldOnRedis('greeter')).toBe(false);
  });

  it('serialises concurrent calls: a read-modify-write loses no update', async () => {
    const counter = await start(Counter);
    await Promise.all(Array.from({ length: 10 }, () => counter.lockedIncrement()));
    expect(counter.value).toBe(10);
  });

  it('without @Locked the same code loses updates (the control case)', async () => {
    const counter = await start(Counter);
    await Promise.all(Array.from({ length: 10 }, () => counter.unlockedIncrement()));
    expect(counter.value).toBeLessThan(10);
  });

  it('a nested @Locked call on the same name re-enters while another caller waits', async () => {
    const nested = await start(Nested);
    await Promise.all([nested.outer('a'), nested.outer('b')]);
    const block = (tag: string) => [`${tag}:outer-start`, `${tag}:inner`, `${tag}:outer-end`];
    expect([
      [...block('a'), ...block('b')],
      [...block('b'), ...block('a')],
    ]).toContainEqual(nested.events);
  });

  it('currentLock() returns the lock held by the innermost @Locked method', async () => {
    const current = await start(Current);
    expect(currentLock()).toBeUndefined();
    const { outer, inner, after } = await current.outer();
    expect(outer).toBeInstanceOf(RedisLock);
    expect(outer?.name).toBe('current');
    expect(outer?.key).toBe(`${NAMESPACE}_current`);
    expect(inner?.name).toBe('current-inner');
    expect(inner?.key).toBe(`${NAMESPACE}_current-inner`);
    expect(after).toBe(outer);
    expect(outer?.isAcquired).toBe(false);
    expect(currentLock()).toBeUndefined();
  });

  it('a name function of the arguments gives one lock per id', async () => {
    const orders = await start(Orders);
    // Two ids: both run at the same time.
    const a = orders.process('1', 'a');
    const b = orders.process('2', 'b');
    await waitFor(() => orders.events.includes('a:start') && orders.events.includes('b:start'), {
      what: 'both ids running at once',
    });
    expect(await heldOnRedis('order:1')).toBe(true);
    expect(await heldOnRedis('order:2')).toBe(true);
    orders.gateOf('a').open();
    orders.gateOf('b').open();
    expect(await Promise.all([a, b])).toEqual(['1/a', '2/b']);

    // The same id twice: the second waits for the first.
    const first = orders.process('3', 'first');
    await waitFor(() => orders.events.includes('first:start'));
    const second = orders.process('3', 'second');
    await delay(300);
    expect(orders.events).not.toContain('second:start');
    orders.gateOf('first').open();
    orders.gateOf('second').open();
    expect(await Promise.all([first, second])).toEqual(['3/first', '3/second']);
    expect(orders.events.indexOf('second:start')).toBeGreaterThan(
      orders.events.indexOf('first:end'),
    );
  });

  describe('when the lock is busy', () => {
    it('wait: false rejects with LockBusyError without running the method', async () => {
      const busy = await start(Busy);
      await redis.hold('busy', { namespace: NAMESPACE });
      const err = await rejectionOf(busy.throwAtOnce());
      expect(err).toBeInstanceOf(LockBusyError);
      expect((err as LockBusyError).lockName).toBe('busy');
      expect(busy.runs).toBe(0);
    });

    it('wait: true with a short timeout rejects with LockTimeoutError', async () => {
      const busy = await start(Busy);
      await redis.hold('busy', { namespace: NAMESPACE });
      const err = await rejectionOf(busy.waitBriefly());
      expect(err).toBeInstanceOf(LockTimeoutError);
      expect((err as LockTimeoutError).timeout).toBe(300);
      expect(busy.runs).toBe(0);
    });

    it("onBusy: 'skip' resolves undefined without running the method", async () => {
      const busy = await start(Busy);
      const held = await redis.hold('busy', { namespace: NAMESPACE });
      expect(await busy.skip()).toBeUndefined();
      expect(busy.runs).toBe(0);
      await held.release();
      expect(await busy.skip()).toBe('ran');
      expect(busy.runs).toBe(1);
    });
  });

  it('atLeastFor keeps the lock after the method returns, then frees it', async () => {
    const app = await apps.start({ imports: sherlock(), providers: [Lingering] });
    const lingering = app.get(Lingering);
    const locks = app.get(LockService);
    const started = performance.now();
    expect(await lingering.quick()).toBe('done');
    expect(await locks.isLocked('linger')).toBe(true);
    expect(await heldOnRedis('linger')).toBe(true);
    await waitFor(async () => !(await locks.isLocked('linger')), {
      timeout: 8_000,
      what: 'the kept lock being freed',
    });
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_900);
  });

  it("name: 'audit' takes the lock through the named registration", async () => {
    const audited = await start(Audited);
    const recording = audited.record();
    await waitFor(() => etcd.isLocked('audited', AUDIT_NAMESPACE), {
      what: 'the lock on etcd',
    });
    expect(await heldOnRedis('audited')).toBe(false);
    audited.release.open();
    const lock = await recording;
    expect(lock).toBeInstanceOf(EtcdLock);
    expect(lock?.key).toBe(`${AUDIT_NAMESPACE}/audited`);
    expect(await etcd.isLocked('audited', AUDIT_NAMESPACE)).toBe(false);
  });
});
