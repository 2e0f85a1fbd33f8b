/**
 * The sample app end to end, over HTTP, on every backend: two instances of the app (two Nest
 * applications, each with its own SherlockModule and its own client to the same lock server,
 * like two replicas behind a load balancer) share one account store, and requests are spread
 * over both. Mutual exclusion between them can only come from the distributed lock.
 */
import { LockService } from 'nestjs-sherlock';
import { performance } from 'node:perf_hooks';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { InMemoryAccountStore } from '../../sample-app/src/accounts/account.store.js';
import {
  BACKENDS,
  backendEnv,
  closeAll,
  type SampleApp,
  startReplicas,
  startSampleApp,
  uniqueNamespace,
} from './support/sample-app.js';

/** Concurrent transfers of 1 per run. */
const TRANSFERS = 40;
const OPENING = 1_000;

/** The instance that serves the i-th request: alternately the first and the second. */
const pick = (replicas: readonly SampleApp[], i: number): string => {
  const replica = replicas[i % replicas.length];
  if (!replica) throw new Error('no replica');
  return replica.url;
};

async function balance(url: string, id: string): Promise<number> {
  const response = await request(url).get(`/accounts/${id}`).expect(200);
  return (response.body as { balance: number }).balance;
}

describe('sample app with no configuration', () => {
  it('runs on the memory backend, in the "sample" namespace', async () => {
    const { app, url } = await startSampleApp({
      env: { SHERLOCK_BACKEND: undefined, SHERLOCK_NAMESPACE: undefined },
    });
    try {
      const locks = app.get(LockService);
      expect(locks.backend).toBe('memory');
      expect(locks.create('x').key).toBe('sample_x');
      await request(url).get('/accounts/alice').expect(200, { id: 'alice', balance: 1_000 });
    } finally {
      await app.close();
    }
  });
});

describe.each(BACKENDS)('sample app on the %s backend, two instances', (backend) => {
  let replicas: SampleApp[] = [];
  const namespace = uniqueNamespace(`e2e-${backend}`);
  // One store for both instances, as a shared database would be. Each test uses its own accounts.
  const store = new InMemoryAccountStore(
    { a: OPENING, b: 0, c: OPENING, d: 0, e: OPENING, f: 0, g: OPENING, h: OPENING },
    5,
  );

  beforeAll(async () => {
    replicas = await startReplicas(2, {
      env: {
        ...backendEnv(backend),
        SHERLOCK_NAMESPACE: namespace,
        // 40 transfers queue on one lock: on a loaded machine (etcd especially) the last ones
        // may wait longer than the default 10 s.
        SHERLOCK_TIMEOUT_MS: '40000',
      },
      store,
    });
  });

  afterAll(async () => {
    await closeAll(replicas);
  });

  it('configures each instance from the environment', () => {
    for (const { app } of replicas) {
      const locks = app.get(LockService);
      expect(locks.backend).toBe(backend);
      expect(locks.create('x').key).toMatch(new RegExp(`^${namespace}[_/]x$`));
    }
  });

  it(`keeps the books exact with ${TRANSFERS} concurrent locked transfers over both instances`, async () => {
    const responses = await Promise.all(
      Array.from({ length: TRANSFERS }, (_, i) =>
        request(pick(replicas, i))
          .post('/accounts/transfer')
          .send({ from: 'a', to: 'b', amount: 1 }),
      ),
    );
    const failed = responses.filter((response) => response.status !== 201);
    expect(failed.map((response) => `${response.status} ${response.text}`)).toEqual([]);
    expect(await balance(pick(replicas, 0), 'a')).toBe(OPENING - TRANSFERS);
    expect(await balance(pick(replicas, 1), 'b')).toBe(TRANSFERS);
  });

  it(`completes ${TRANSFERS} opposite concurrent transfers (g→h and h→g, over both instances) without deadlock, and conserves the total`, async () => {
    // Each transfer locks both accounts; taken one by one in argument order, g→h and h→g would
    // each hold one and wait for the other until the timeout. Taken as one set they never do.
    const started = performance.now();
    const responses = await Promise.all(
      Array.from({ length: TRANSFERS }, (_, i) => {
        const [from, to, amount] = i % 2 === 0 ? ['g', 'h', 3] : ['h', 'g', 1];
        return request(pick(replicas, Math.floor(i / 2)))
          .post('/accounts/transfer')
          .send({ from, to, amount });
      }),
    );
    const failed = responses.filter((response) => response.status !== 201);
    expect(failed.map((response) => `${response.status} ${response.text}`)).toEqual([]);
    const g = await balance(pick(replicas, 0), 'g');
    const h = await balance(pick(replicas, 1), 'h');
    const half = TRANSFERS / 2;
    expect(g).toBe(OPENING - 3 * half + half);
    expect(h).toBe(OPENING + 3 * half - half);
    expect(g + h).toBe(2 * OPENING);
    console.log(
      `${backend}: ${TRANSFERS} opposite transfers in ${Math.round(performance.now() - started)} ms`,
    );
  });

  it('loses updates with the same transfers on the unsafe (unlocked) endpoint', async () => {
    const responses = await Promise.all(
      Array.from({ length: TRANSFERS }, (_, i) =>
        request(pick(replicas, i))
          .post('/accounts/transfer-unsafe')
          .send({ from: 'c', to: 'd', amount: 1 }),
      ),
    );
    // Every transfer reports success...
    expect(responses.map((response) => response.status)).toEqual(Array(TRANSFERS).fill(201));
    // ...yet far less than TRANSFERS left c and reached d: the books no longer match what was
    // paid (money that was paid out of c is still in c).
    const c = await balance(pick(replicas, 0), 'c');
    const d = await balance(pick(replicas, 1), 'd');
    expect(OPENING - c).toBeLessThan(TRANSFERS);
    expect(d).toBeLessThan(TRANSFERS);
  });

  it('rejects a transfer without funds, and a bad body, without touching the balances', async () => {
    await request(pick(replicas, 0))
      .post('/accounts/transfer')
      .send({ from: 'f', to: 'e', amount: 1 })
      .expect(422);
    await request(pick(replicas, 1))
      .post('/accounts/transfer')
      .send({ from: 'e', to: 'f', amount: -3 })
      .expect(400);
    await request(pick(replicas, 0))
      .post('/accounts/transfer')
      .send({ from: 'e', to: 'nobody', amount: 1 })
      .expect(404);
    expect(await balance(pick(replicas, 1), 'e')).toBe(OPENING);
    expect(await balance(pick(replicas, 0), 'f')).toBe(0);
  });

  it('answers 409 LOCK_BUSY with the lock name (and Retry-After when the backend reports the time left) to a concurrent request for the same order', async () => {
    const [first, second, other] = await Promise.all([
      request(pick(replicas, 0)).post('/orders/7/process?ms=400'),
      request(pick(replicas, 1)).post('/orders/7/process?ms=400'),
      request(pick(replicas, 1)).post('/orders/8/process?ms=400'),
    ]);
    const sevens = [first, second];
    const statuses = sevens.map((response) => response.status).sort();
    expect(statuses).toEqual([201, 409]);

    const conflict = sevens.find((response) => response.status === 409);
    expect(conflict?.headers['content-type']).toMatch(/application\/json/);
    expect(conflict?.body).toMatchObject({ statusCode: 409, code: 'LOCK_BUSY', lock: 'order:7' });
    expect((conflict?.body as { message: string }).message).toContain('order:7');
    // The holder's time left, from the server: Redis and Memory report it; Memcached and Etcd do not, and
    // the header is then absent (never the lock's full expire).
    if (backend === 'redis' || backend === 'memory')
      expect(conflict?.headers['retry-after']).toMatch(/^[1-9]\d*$/);
    else expect(conflict?.headers['retry-after']).toBeUndefined();

    const done = sevens.find((response) => response.status === 201);
    expect(done?.body).toMatchObject({ id: '7', status: 'processed' });
    // Another order is not held up by order 7.
    expect(other.status).toBe(201);
    expect(other.body).toMatchObject({ id: '8', status: 'processed' });

    // Released when the handler finished: the order can be processed again, on either instance.
    await request(pick(replicas, 1)).post('/orders/7/process?ms=0').expect(201);
  });

  it('lets one report be generated at a time, with LockService used directly', async () => {
    const generating = Promise.all([
      request(pick(replicas, 0)).post('/reports?ms=1000'),
      request(pick(replicas, 1)).post('/reports?ms=1000'),
    ]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const during = await request(pick(replicas, 1)).get('/reports/status').expect(200);
    expect(during.body).toEqual({ generating: true });

    const statuses = (await generating).map((response) => response.status).sort();
    expect(statuses).toEqual([201, 409]);

    const after = await request(pick(replicas, 0)).get('/reports/status').expect(200);
    expect(after.body).toEqual({ generating: false });
  });

  it('runs at most 2 report exports at once over both instances (a semaphore); a request that waits too long gets 429; memcached answers 501', async () => {
    const exports = Array.from({ length: 4 }, (_, i) =>
      request(pick(replicas, i % 2)).post('/reports/exports?ms=1500&wait=500'),
    );
    const responses = await Promise.all(exports);
    if (backend === 'memcached') {
      expect(responses.map((r) => r.status)).toEqual([501, 501, 501, 501]);
      expect(responses[0]?.body.message).toMatch(/does not offer a semaphore/);
      return;
    }
    const statuses = responses.map((r) => r.status).sort();
    // Two got a permit at once; the other two waited 0.5 s of the 1.5 s exports and gave up.
    expect(statuses).toEqual([201, 201, 429, 429]);
    for (const r of responses.filter((each) => each.status === 201)) {
      expect(r.body.runningAtStart).toBeLessThanOrEqual(2);
    }
    // The permits were given back: the next export runs at once.
    await request(pick(replicas, 1)).post('/reports/exports?ms=0&wait=0').expect(201);
  });
});
