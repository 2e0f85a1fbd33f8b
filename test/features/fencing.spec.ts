/**
 * Fencing tokens (`lock.fencingToken`): a decimal string that strictly increases per lock name with
 * every acquisition, across all clients. Checked on the real servers, and on the server side:
 * the Redis counter lives in the lock key's own cluster slot (asked of a cluster-mode Redis), the
 * Etcd token is the revision that created the key, the Memcached counter survives its eviction by
 * restarting from the clock. Multi-process holding order: processes.spec.ts.
 */
import { createHash } from 'node:crypto';

import { Cluster } from 'ioredis';
import { MemoryLock, MemoryStore, RedisLock } from 'nestjs-sherlock';
import { afterAll, describe, it } from 'vitest';

import { FENCING, NO_FENCING, uniqueName } from '../support/backends.js';
import { expectStrictlyIncreasing, waitFor } from '../support/helpers.js';
import {
  closeEtcdInspector,
  etcdHolder,
  etcdInspector,
  memcachedDelete,
  memcachedGet,
  redisRaw,
  redisTarget,
} from '../support/inspect.js';
import { scope } from '../support/locks.js';
import { type RedisServer, startRedis } from '../support/servers.js';

afterAll(closeEtcdInspector);

const CLIENTS = 3;
const ROUNDS = 20;

describe.concurrent('fencing tokens, on every backend that declares them', () => {
  it.for(FENCING)(
    `$name: ${CLIENTS} clients × ${ROUNDS} acquires in turn: each token above the one before; none before acquire or after release`,
    async (f, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const name = uniqueName('fence');
      // One lock object per client, each on a client (connection) of its own.
      const locks = Array.from({ length: CLIENTS }, () => lock(f, name));
      for (const each of locks) expect(each.fencingToken).toBeUndefined();

      const tokens: (string | undefined)[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        for (const each of locks) {
          expect(await each.acquire(false)).toBe(true);
          const token = each.fencingToken;
          tokens.push(token);
          // The same token for as long as this holding lasts.
          expect(each.fencingToken).toBe(token);
          await each.release();
          expect(each.fencingToken).toBeUndefined();
        }
      }
      expect(tokens).toHaveLength(CLIENTS * ROUNDS);
      expectStrictlyIncreasing(tokens);
    },
  );

  it.for(FENCING)(
    '$name: a rival that fails to acquire gets no token, and the holder keeps its own',
    async (f, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const name = uniqueName('rival');
      const holder = lock(f, name);
      const rival = lock(f, name);
      expect(await holder.acquire(false)).toBe(true);
      const token = holder.fencingToken;
      expect(await rival.acquire(false)).toBe(false);
      expect(rival.fencingToken).toBeUndefined();
      expect(holder.fencingToken).toBe(token);
      await holder.release();
      expect(await rival.acquire(false)).toBe(true);
      expect(BigInt(rival.fencingToken ?? -1)).toBeGreaterThan(BigInt(token ?? 0));
    },
  );

  it.for(FENCING)(
    '$name: a holding taken after the previous one expired gets a higher token',
    async (f, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const name = uniqueName('fence-expiry');
      const first = lock(f, name, { expire: f.shortExpire });
      const next = lock(f, name, { retryInterval: 50 });
      expect(await first.acquire(false)).toBe(true);
      const token = first.fencingToken;
      expect(await next.acquire({ timeout: f.shortExpire + 5_000 })).toBe(true);
      expect(first.fencingToken, 'still its own holding, as far as it knows').toBe(token);
      expectStrictlyIncreasing([token, next.fencingToken]);
      await next.release();
    },
  );
});

describe.concurrent('no fencing tokens, on every backend that does not declare them', () => {
  it.for(NO_FENCING)(
    '$name: fencingToken stays undefined while held, and after',
    async (f, { expect, onTestFinished }) => {
      const { lock } = scope(onTestFinished);
      const name = uniqueName('no-fence');
      for (const held of [lock(f, name), lock(f, name)]) {
        expect(held.fencingToken).toBeUndefined();
        expect(await held.acquire(false)).toBe(true);
        expect(held.isAcquired).toBe(true);
        expect(held.fencingToken).toBeUndefined();
        await held.release();
        expect(held.fencingToken).toBeUndefined();
      }
    },
  );
});

describe.concurrent('where each backend takes its tokens from', () => {
  it("etcd: the token is the revision that created the holder's entry", async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const held = lock('etcd', uniqueName('revision'));
    for (let i = 0; i < 3; i++) {
      expect(await held.acquire(false)).toBe(true);
      const kv = await etcdHolder(held.key);
      expect(kv?.create_revision).toBe(held.fencingToken);
      expect(kv?.mod_revision).toBe(held.fencingToken);
      await held.release();
    }
  });

  it('etcdgateway (a custom LockBackend): the token is the revision of the put that took the key, its create revision', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const held = lock('etcdgateway', uniqueName('gw-revision'));
    for (let i = 0; i < 3; i++) {
      expect(await held.acquire(false)).toBe(true);
      const [kv] = (await etcdInspector().get(held.key).exec()).kvs;
      expect(kv?.create_revision).toBe(held.fencingToken);
      expect(kv?.mod_revision).toBe(held.fencingToken);
      await held.release();
    }
  });

  it('memory: one counter per store, shared by every name; another store counts on its own', async ({
    expect,
  }) => {
    const store = new MemoryStore();
    const other = new MemoryStore();
    const a = new MemoryLock('a', { client: store });
    const b = new MemoryLock('b', { client: store });
    const elsewhere = new MemoryLock('a', { client: other });
    const tokens: (string | undefined)[] = [];
    for (let i = 0; i < 5; i++) {
      for (const each of [a, b]) {
        expect(await each.acquire(false)).toBe(true);
        tokens.push(each.fencingToken);
      }
      await a.release();
      await b.release();
    }
    expectStrictlyIncreasing(tokens);
    expect(tokens[0]).toBe('1');
    expect(await elsewhere.acquire(false)).toBe(true);
    expect(elsewhere.fencingToken).toBe('1');
    await elsewhere.release();
  });

  it("redis: the counter is the key '\\u001ffence:{tag}' (after 'namespace_'), holding the last token, never expiring", async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const bare = lock('redis', uniqueName('counter')) as RedisLock;
    // A namespace of its own: no other file's lock counts on its counter.
    const namespace = uniqueName('feat');
    const namespaced = lock('redis', uniqueName('counter'), { namespace }) as RedisLock;
    // (The unit separator U+001F shown as <US>.)
    const shown = (key: string) => key.replace('\u001f', '<US>');
    expect(shown(bare.fencingKey)).toMatch(/^<US>fence:\{[0-9a-z]+\}$/);
    expect(shown(namespaced.fencingKey)).toBe(
      `${namespace}_<US>fence:{${/\{([0-9a-z]+)\}$/.exec(shown(namespaced.fencingKey))?.[1]}}`,
    );
    for (const held of [bare, namespaced]) {
      expect(await held.acquire(false)).toBe(true);
      // The bare counter is shared by every lock without a namespace whose key lands in its slot
      // (another file's, running beside this one): at least this token, and not far above it.
      const counter = BigInt((await redisRaw(['GET', held.fencingKey])) as string);
      const token = BigInt(held.fencingToken ?? -1);
      if (held === namespaced) expect(counter).toBe(token);
      else
        expect(counter - token >= 0n && counter - token < 1000n, `${counter} vs ${token}`).toBe(
          true,
        );
      expect(await redisRaw(['PTTL', held.fencingKey])).toBe(-1);
      await held.release();
    }
    // No lock name can be a counter's key: names cannot hold control characters.
    expect(() => new RedisLock(bare.fencingKey)).toThrow(RangeError);
  });

  it('redis: the counter starts at the server clock in µs and goes on from the last token; lost (FLUSHALL, a restart without persistence), it restarts from the clock, still above', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const name = uniqueName('flushed');
    // A namespace of its own: the counter counts this test's locks alone (exact steps below).
    const namespace = uniqueName('flushed');
    const first = lock('redis', name, { namespace }) as RedisLock;
    const second = lock('redis', name, { namespace });
    await redisRaw(['DEL', first.fencingKey]);

    const serverMicros = async () => {
      const [seconds, micros] = (await redisRaw(['TIME'])) as [string, string];
      return BigInt(seconds) * 1_000_000n + BigInt(micros);
    };
    const before = await serverMicros();
    expect(await first.acquire(false)).toBe(true);
    const after = await serverMicros();
    const tokens = [first.fencingToken];
    const initial = BigInt(first.fencingToken ?? -1);
    expect(initial).toBeGreaterThan(before);
    expect(initial).toBeLessThanOrEqual(after + 1n);
    await first.release();

    for (const each of [second, first, second]) {
      expect(await each.acquire(false)).toBe(true);
      tokens.push(each.fencingToken);
      await each.release();
    }
    expect(tokens.map((token) => BigInt(token ?? -1) - initial)).toEqual([0n, 1n, 2n, 3n]);

    // Lost: the next acquisition starts it again from the clock, above every token so far.
    expect(await redisRaw(['DEL', first.fencingKey])).toBe(1);
    expect(await second.acquire(false)).toBe(true);
    tokens.push(second.fencingToken);
    expectStrictlyIncreasing(tokens);
    await second.release();
  });

  it('memcached: the counter starts at the clock in µs and goes on from the last token; deleted by hand (an eviction), it restarts from the clock, still above', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const name = uniqueName('evicted');
    const first = lock('memcached', name);
    const second = lock('memcached', name);
    const fenceKey = `${first.key} fence`;

    const before = BigInt(Date.now()) * 1000n;
    expect(await first.acquire(false)).toBe(true);
    const after = BigInt(Date.now()) * 1000n;
    const firstToken = first.fencingToken;
    const initial = BigInt(firstToken ?? -1);
    expect(initial).toBeGreaterThanOrEqual(before);
    expect(initial).toBeLessThanOrEqual(after);
    expect((await memcachedGet(fenceKey))?.value).toBe(first.fencingToken);
    await first.release();

    // While the counter exists: +1 per acquisition, whichever client.
    const tokens = [firstToken];
    for (const each of [second, first, second]) {
      expect(await each.acquire(false)).toBe(true);
      tokens.push(each.fencingToken);
      await each.release();
    }
    expect(tokens.map((token) => BigInt(token ?? -1) - initial)).toEqual([0n, 1n, 2n, 3n]);

    // Evicted: the next acquisition creates it again from the clock, above every token so far.
    expect(await memcachedDelete(fenceKey)).toBe(true);
    await waitFor(() => Date.now() * 1000 > Number(initial) + 1000, {
      what: 'the clock moving on',
    });
    expect(await second.acquire(false)).toBe(true);
    tokens.push(second.fencingToken);
    expectStrictlyIncreasing(tokens);
    expect((await memcachedGet(fenceKey))?.value).toBe(second.fencingToken);
  });

  it('memcached: a key too long to be suffixed keeps its counter under the hash of the key', async ({
    expect,
    onTestFinished,
  }) => {
    const { lock } = scope(onTestFinished);
    const name = `${uniqueName('long')}-`.padEnd(248, 'x');
    const held = lock('memcached', name);
    const fenceKey = `${createHash('sha256').update(held.key).digest('hex')} fence`;
    const tokens: (string | undefined)[] = [];
    for (let i = 0; i < 3; i++) {
      expect(await held.acquire(false)).toBe(true);
      tokens.push(held.fencingToken);
      expect((await memcachedGet(fenceKey))?.value).toBe(held.fencingToken);
      await held.release();
    }
    expectStrictlyIncreasing(tokens);
    await memcachedDelete(fenceKey);
  });
});

describe("redis cluster (one node holding all 16 384 slots): the counter is in the lock key's slot", () => {
  let server: RedisServer | undefined;
  let cluster: Cluster | undefined;

  afterAll(async () => {
    cluster?.disconnect();
    await server?.stop();
  });

  async function startCluster(): Promise<{ server: RedisServer; cluster: Cluster }> {
    server = await startRedis({
      args: ['--cluster-enabled', 'yes', '--cluster-announce-ip', '127.0.0.1'],
    });
    const target = redisTarget(server.url);
    await redisRaw(['CLUSTER', 'ADDSLOTSRANGE', 0, 16383], target);
    await waitFor(
      async () => String(await redisRaw(['CLUSTER', 'INFO'], target)).includes('cluster_state:ok'),
      { what: 'cluster_state:ok' },
    );
    cluster = new Cluster([{ host: '127.0.0.1', port: server.port }]);
    return { server, cluster };
  }

  it("200 names (namespaces and hash tags included) all acquire through a Cluster client; each counter shares its lock key's slot; at most one counter per slot and namespace", async ({
    expect,
  }) => {
    const started = await startCluster();
    const target = redisTarget(started.server.url);
    const slotOf = async (key: string) =>
      Number(await redisRaw(['CLUSTER', 'KEYSLOT', key], target));

    const base = uniqueName('slot');
    const specs: { name: string; namespace?: string }[] = [];
    for (let i = 0; i < 200; i++) {
      const namespace = [undefined, 'ns', '{tag}', 'a{', 'b}{'][i % 5];
      const name = i % 7 === 0 ? `{shared}-${base}-${i}` : `${base}-${i}-é`;
      specs.push(namespace === undefined ? { name } : { name, namespace });
    }
    const lockSlots = new Set<number>();
    const perCounter = new Map<string, string[]>();
    for (const spec of specs) {
      const held = new RedisLock(spec.name, {
        client: started.cluster,
        ...(spec.namespace === undefined ? {} : { namespace: spec.namespace }),
      });
      // A Lua script whose keys span two slots fails on a cluster (CROSSSLOT): this must not.
      expect(await held.acquire(false)).toBe(true);
      const slot = await slotOf(held.key);
      expect(
        await slotOf(held.fencingKey),
        `${held.key} / ${JSON.stringify(held.fencingKey)}`,
      ).toBe(slot);
      lockSlots.add(slot);
      perCounter.set(held.fencingKey, [
        ...(perCounter.get(held.fencingKey) ?? []),
        held.fencingToken ?? '',
      ]);
      await held.release();
    }

    // On the server: one counter per slot used, in that slot, without expiry.
    const counters = (await redisRaw(['KEYS', '*\u001ffence:*'], target)) as string[];
    expect(counters.length).toBeLessThanOrEqual(specs.length);
    expect(new Set(counters)).toEqual(new Set(perCounter.keys()));
    const counterSlots = new Set<number>();
    for (const counter of counters) {
      const slot = await slotOf(counter);
      expect(lockSlots.has(slot)).toBe(true);
      counterSlots.add(slot);
      expect(await redisRaw(['PTTL', counter], target)).toBe(-1);
    }
    // Each namespace has its own counter in a slot; the slots are exactly those of the lock keys.
    expect(counterSlots).toEqual(lockSlots);
    // Names sharing a counter (e.g. one hash tag) still each get increasing tokens.
    for (const tokens of perCounter.values()) expectStrictlyIncreasing(tokens);
    expect(Math.max(...[...perCounter.values()].map((tokens) => tokens.length))).toBeGreaterThan(
      20,
    );
  });
});
