/**
 * Several names at once in Nest, on a real Redis: `@Locked` with an array of names or a name
 * function returning one (all held while the method runs, none when busy, 409 naming the busy
 * lock on a handler), re-entrancy (a name the call chain already holds is not taken again),
 * `currentMultiLock()`, opposite-order callers that never deadlock, `LockService.lockAll()` and
 * `LockService.run()` with an array, and what is checked at bootstrap.
 */
import { Controller, Get, Injectable, Param } from '@nestjs/common';
import {
  currentLock,
  currentMultiLock,
  LockBusyError,
  Locked,
  LockService,
  LockTimeoutError,
  MultiLock,
  SherlockModule,
} from 'nestjs-sherlock';
import request from 'supertest';
import { describe, expect, it } from 'vitest';

import { memcachedServerList, redisUrl } from '../support/env.js';
import {
  CapturingLogger,
  delay,
  gate,
  rejectionOf,
  uniqueName,
  useApps,
  useProbe,
  waitFor,
} from './helpers.js';

const apps = useApps();
const probe = useProbe('redis');
/** Lock names in the decorators are fixed; this per-run namespace keeps the keys unique. */
const NAMESPACE = uniqueName('multi');
const EXPIRE = 20_000;

const sherlock = () =>
  SherlockModule.forRoot({
    backend: 'redis',
    connection: redisUrl(),
    namespace: NAMESPACE,
    expire: EXPIRE,
    retryInterval: 10,
  });

const heldOnRedis = (name: string) => probe.isLocked(name, NAMESPACE);
/** Which of `names` are held on the server right now. */
const heldOf = async (names: readonly string[]) => {
  const held = await Promise.all(names.map(heldOnRedis));
  return names.filter((_, i) => held[i]);
};

interface Seen {
  readonly held: string[];
  readonly multi: readonly string[] | undefined;
  readonly tokens: string[];
  readonly aborted: boolean | undefined;
}

@Injectable()
class Ledger {
  readonly events: string[] = [];
  readonly hold = new Map<string, ReturnType<typeof gate>>();

  /** What the method sees while it runs: the names held on the server and its multi-lock. */
  private async look(names: readonly string[]): Promise<Seen> {
    const multi = currentMultiLock();
    return {
      held: await heldOf(names),
      multi: multi?.names,
      tokens: [...(multi?.fencingTokens.keys() ?? [])],
      aborted: multi?.signal.aborted,
    };
  }

  @Locked(['ledger:b', 'ledger:a'])
  async both(): Promise<Seen> {
    return this.look(['ledger:a', 'ledger:b']);
  }

  @Locked((from: string, to: string) => [`acct:${from}`, `acct:${to}`], { wait: false })
  async transferNow(from: string, to: string): Promise<Seen> {
    return this.look([`acct:${from}`, `acct:${to}`]);
  }

  @Locked((from: string, to: string) => [`acct:${from}`, `acct:${to}`], { timeout: 300 })
  async transferSoon(from: string, to: string): Promise<string> {
    return `${from}->${to}`;
  }

  @Locked((from: string, to: string) => [`acct:${from}`, `acct:${to}`], {
    wait: false,
    onBusy: 'skip',
  })
  async transferIfFree(from: string, to: string): Promise<string | undefined> {
    return `${from}->${to}`;
  }

  /** Read, wait, write on both accounts while holding both. */
  @Locked(
    (_balances: Map<string, number>, from: string, to: string) => [`bank:${from}`, `bank:${to}`],
    { timeout: 30_000 },
  )
  async move(balances: Map<string, number>, from: string, to: string): Promise<void> {
    await this.moveUnlocked(balances, from, to);
  }

  async moveUnlocked(balances: Map<string, number>, from: string, to: string): Promise<void> {
    const a = balances.get(from) ?? 0;
    const b = balances.get(to) ?? 0;
    await delay(2);
    balances.set(from, a - 1);
    balances.set(to, b + 1);
  }

  // The outer holds 'acct:x'; the inner wants x and y: it takes y only (a short timeout: if it
  // tried to take x again it would time out, not hang).
  @Locked((id: string) => `acct:${id}`)
  async outer(id: string, other: string): Promise<{ inner: Seen; afterInner: string[] }> {
    const inner = await this.inner(id, other);
    const afterInner = await heldOf([`acct:${id}`, `acct:${other}`]);
    return { inner, afterInner };
  }

  @Locked((id: string, other: string) => [`acct:${id}`, `acct:${other}`], { timeout: 1_000 })
  async inner(id: string, other: string): Promise<Seen> {
    this.events.push(`inner:${currentLock()?.name}`);
    return this.look([`acct:${id}`, `acct:${other}`]);
  }

  // A set inside a set: [p, q] then [q, r] takes r only.
  @Locked(['set:p', 'set:q'])
  async outerSet(): Promise<{ inner: Seen; afterInner: string[] }> {
    const inner = await this.innerSet();
    return { inner, afterInner: await heldOf(['set:p', 'set:q', 'set:r']) };
  }

  @Locked(['set:q', 'set:r'], { timeout: 1_000 })
  async innerSet(): Promise<Seen> {
    return this.look(['set:p', 'set:q', 'set:r']);
  }

  @Locked(['linger:a', 'linger:b'], { atLeastFor: 1_500 })
  async linger(): Promise<string> {
    return 'done';
  }
}

async function startLedger(): Promise<Ledger> {
  const app = await apps.start({ imports: [sherlock()], providers: [Ledger] });
  return app.get(Ledger);
}

describe('@Locked with several names', () => {
  it('a fixed array: holds every name while the method runs (as one multi-lock), none after', async () => {
    const ledger = await startLedger();
    const seen = await ledger.both();
    expect(seen).toEqual({
      held: ['ledger:a', 'ledger:b'],
      multi: ['ledger:a', 'ledger:b'],
      tokens: ['ledger:a', 'ledger:b'],
      aborted: false,
    });
    expect(await heldOf(['ledger:a', 'ledger:b'])).toEqual([]);
  });

  it('a name function returning an array: all or none; wait: false rejects with LockBusyError naming the busy member', async () => {
    const ledger = await startLedger();
    const busy = await probe.hold('acct:b2', { namespace: NAMESPACE });
    const error = await rejectionOf(ledger.transferNow('a2', 'b2'));
    expect(error).toBeInstanceOf(LockBusyError);
    expect((error as LockBusyError).lockName).toBe('acct:a2, acct:b2');
    expect((error as LockBusyError).member).toBe('acct:b2');
    expect(await heldOnRedis('acct:a2')).toBe(false); // taken, then released: none held
    expect(await ledger.transferIfFree('a2', 'b2')).toBeUndefined(); // onBusy: 'skip'

    const timedOut = await rejectionOf(ledger.transferSoon('b2', 'a2'));
    expect(timedOut).toBeInstanceOf(LockTimeoutError);
    expect((timedOut as LockTimeoutError).member).toBe('acct:b2');
    expect(await heldOnRedis('acct:a2')).toBe(false);

    await busy.release();
    const seen = await ledger.transferNow('b2', 'a2');
    expect(seen.held).toEqual(['acct:b2', 'acct:a2']);
    expect(seen.multi).toEqual(['acct:a2', 'acct:b2']); // canonical order, not argument order
  });

  it('opposite-order concurrent calls all complete and never overlap on an account', async () => {
    const ledger = await startLedger();
    const balances = new Map([
      ['x', 1_000],
      ['y', 1_000],
      ['z', 1_000],
    ]);
    const pairs: [string, string][] = [
      ['x', 'y'],
      ['y', 'x'],
      ['y', 'z'],
      ['z', 'y'],
      ['z', 'x'],
      ['x', 'z'],
    ];
    const calls = Array.from({ length: 60 }, (_, i) => {
      const [from, to] = pairs[i % pairs.length] as [string, string];
      return ledger.move(balances, from, to);
    });
    await Promise.all(calls);
    // Each pair and its opposite ran 10 times: every balance is back where it started, which a
    // lost update (two calls writing one account at once) would have broken.
    expect(Object.fromEntries(balances)).toEqual({ x: 1_000, y: 1_000, z: 1_000 });
  });

  it('re-entrant: a name the call chain already holds is not taken again; the inner call takes the rest and releases only that', async () => {
    const ledger = await startLedger();
    const { inner, afterInner } = await ledger.outer('r1', 'r2');
    expect(inner.held).toEqual(['acct:r1', 'acct:r2']);
    expect(inner.multi).toEqual(['acct:r1', 'acct:r2']);
    expect(inner.tokens).toEqual(['acct:r1', 'acct:r2']);
    expect(inner.aborted).toBe(false);
    expect(afterInner).toEqual(['acct:r1']); // the outer still holds r1; r2 was the inner's
    expect(await heldOf(['acct:r1', 'acct:r2'])).toEqual([]);
    expect(ledger.events).toEqual(['inner:acct:r2']);
  });

  it('re-entrant with a set inside a set: only the new names are taken', async () => {
    const ledger = await startLedger();
    const { inner, afterInner } = await ledger.outerSet();
    expect(inner.held).toEqual(['set:p', 'set:q', 'set:r']);
    expect(inner.multi).toEqual(['set:q', 'set:r']);
    expect(afterInner).toEqual(['set:p', 'set:q']);
    expect(await heldOf(['set:p', 'set:q', 'set:r'])).toEqual([]);
  });

  it('atLeastFor keeps every name after the method returns, then frees them', async () => {
    const ledger = await startLedger();
    expect(await ledger.linger()).toBe('done');
    expect(await heldOf(['linger:a', 'linger:b'])).toEqual(['linger:a', 'linger:b']);
    await waitFor(async () => (await heldOf(['linger:a', 'linger:b'])).length === 0, {
      what: 'the release after atLeastFor',
    });
  });
});

@Controller('pairs')
class PairsController {
  readonly entered = gate();
  readonly leave = gate();

  @Get(':a/:b')
  @Locked((a: string, b: string) => [`pair:${a}`, `pair:${b}`], { wait: false })
  async show(@Param('a') a: string, @Param('b') b: string): Promise<{ locks: string[] }> {
    void [a, b];
    this.entered.open();
    await this.leave.promise;
    return { locks: [...(currentMultiLock()?.names ?? [])] };
  }
}

describe('@Locked with several names on an HTTP handler', () => {
  it('answers 409 naming the lock that was busy; the first request gets every lock', async () => {
    const app = await apps.start(
      { imports: [sherlock()], controllers: [PairsController] },
      { listen: true, logger: new CapturingLogger() },
    );
    const controller = app.get(PairsController);
    const server = app.getHttpServer();
    const first = request(server)
      .get('/pairs/m/n')
      .then((response) => response);
    await controller.entered.promise;
    const conflict = await request(server).get('/pairs/o/n');
    expect(conflict.status).toBe(409);
    expect(conflict.body).toMatchObject({ statusCode: 409, lock: 'pair:n' });
    expect(conflict.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    expect(await heldOnRedis('pair:o')).toBe(false);
    controller.leave.open();
    expect((await first).body).toEqual({ locks: ['pair:m', 'pair:n'] });
  });
});

describe('LockService.lockAll() and run() with an array', () => {
  it('lockAll() returns a MultiLock of the module’s backend and options, not acquired', async () => {
    const app = await apps.start({ imports: [sherlock()] });
    const locks = app.get(LockService);
    const all = locks.lockAll(['s:b', 's:a'], { expire: 5_000 });
    expect(all).toBeInstanceOf(MultiLock);
    expect(all.names).toEqual(['s:a', 's:b']);
    expect(all.locks.map((lock) => lock.key)).toEqual([`${NAMESPACE}_s:a`, `${NAMESPACE}_s:b`]);
    expect(all.expire).toBe(5_000);
    expect(all.isAcquired).toBe(false);
    expect(all.manager).toBe(locks.manager);
    const seen = await all.using(() => heldOf(['s:a', 's:b']));
    expect(seen).toEqual(['s:a', 's:b']);
    expect(await heldOf(['s:a', 's:b'])).toEqual([]);
  });

  it('run() with an array gives fn the held MultiLock; a nested run on the same names re-enters', async () => {
    const app = await apps.start({ imports: [sherlock()] });
    const locks = app.get(LockService);
    const result = await locks.run(['run:b', 'run:a'], async (all) => {
      const nested = await locks.run(
        ['run:a', 'run:b'],
        async (inner) => [...inner.fencingTokens.keys()],
        { timeout: 500 },
      );
      return {
        names: all.names,
        acquired: all.isAcquired,
        nested,
        held: await heldOf(['run:a', 'run:b']),
      };
    });
    expect(result).toEqual({
      names: ['run:a', 'run:b'],
      acquired: true,
      nested: ['run:a', 'run:b'],
      held: ['run:a', 'run:b'],
    });
    expect(await heldOf(['run:a', 'run:b'])).toEqual([]);
  });

  it('run() with an array validates the names and options', async () => {
    const app = await apps.start({ imports: [sherlock()] });
    const locks = app.get(LockService);
    let called = false;
    const empty = await rejectionOf(locks.run([], () => (called = true)));
    expect(empty).toBeInstanceOf(RangeError);
    expect(empty.message).toMatch(/Invalid option 'names': got an array of 0/);
    const bad = await rejectionOf(locks.run(['a'], () => (called = true), { wait: 'no' as never }));
    expect(bad.message).toMatch(/Invalid option 'wait'/);
    expect(called).toBe(false);
  });
});

describe('checked at bootstrap', () => {
  const compileWith = (Provider: new () => object, backend: 'redis' | 'memcached' = 'redis') =>
    apps.start({
      imports: [
        backend === 'redis'
          ? sherlock()
          : SherlockModule.forRoot({ backend: 'memcached', connection: memcachedServerList() }),
      ],
      providers: [Provider],
    });

  it('an empty array or a non-string name fails when the class is defined', () => {
    const define = (names: unknown) => () => {
      class Jobs {
        @Locked(names as string[])
        async run(): Promise<void> {}
      }
      return Jobs;
    };
    expect(define([])).toThrow(/non-empty string or a function \(or a non-empty array of names\)/);
    expect(define(['a', 3])).toThrow(TypeError);
    expect(define(['a', ''])).toThrow(TypeError);
    expect(define(['a', 'b'])).not.toThrow();
  });

  it('too many fixed names, or one too long for the backend, fail the application start', async () => {
    @Injectable()
    class Many {
      @Locked(Array.from({ length: 101 }, (_, i) => `n${i}`))
      async run(): Promise<void> {}
    }
    const many = await rejectionOf(compileWith(Many));
    expect(many).toBeInstanceOf(RangeError);
    expect(many.message).toMatch(/Invalid option 'names': got an array of 101/);

    @Injectable()
    class Long {
      @Locked(['ok', 'x'.repeat(300)])
      async run(): Promise<void> {}
    }
    const long = await rejectionOf(compileWith(Long, 'memcached'));
    expect(long).toBeInstanceOf(RangeError);
    expect(long.message).toMatch(/Invalid lock name for the memcached backend/);
  });

  it('options the backend refuses fail the start too, with a name function', async () => {
    @Injectable()
    class Short {
      @Locked((id: string) => [`a:${id}`, `b:${id}`], { expire: 500 })
      async run(id: string): Promise<void> {
        void id;
      }
    }
    const error = await rejectionOf(compileWith(Short, 'memcached'));
    expect(error).toBeInstanceOf(RangeError);
    expect(error.message).toMatch(/'expire': got 500.*at least 1000 ms on memcached/);
  });
});
