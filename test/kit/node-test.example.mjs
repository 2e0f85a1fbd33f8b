// The contract kit under node:test (no Vitest): `node --test test/kit/node-test.example.mjs`.
// A custom backend's author writes this file for theirs; here, two small in-process backends
// written with `backends.register()`: `mapstore`, correct, and `sloppy`, whose release deletes
// the lock whoever holds it (test/kit/node-test.spec.ts expects the kit to catch it).
import { after, afterEach, before, describe, it } from 'node:test';
import { backends } from 'nestjs-sherlock';
import { runContractSuite } from 'nestjs-sherlock/testing';

/** The "server": a map of key -> { token, fence, expiresAt }. */
class MapStore {
  entries = new Map();
  fence = 0n;
  live(key) {
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt <= Date.now()) this.entries.delete(key);
    return this.entries.get(key);
  }
}

const mapBackend = (name, { checkOwner }) =>
  backends.register({
    name,
    library: 'mapstore',
    capabilities: {
      fencing: true,
      extend: true,
      handOff: 'poll',
      crossProcess: false,
      expiry: { granularity: 1, minimum: 1, maximum: null, earlyBy: 0 },
    },
    clientClass: () => MapStore,
    connect: () => new MapStore(),
    async acquire(lock, token) {
      const store = lock.client;
      const held = store.live(lock.key);
      if (held)
        return {
          granted: false,
          holderTtl: held.expiresAt === Infinity ? -1 : held.expiresAt - Date.now(),
        };
      store.fence += 1n;
      const expiresAt = lock.expire === null ? Infinity : Date.now() + lock.expire;
      store.entries.set(lock.key, { token, expiresAt });
      return { granted: true, fencingToken: store.fence.toString() };
    },
    async release(lock, token) {
      const held = lock.client.live(lock.key);
      if (!held || (checkOwner && held.token !== token)) return false;
      lock.client.entries.delete(lock.key);
      return true;
    },
    async extend(lock, token, ttl) {
      const held = lock.client.live(lock.key);
      if (!held || held.token !== token) return false;
      held.expiresAt = Date.now() + ttl;
      return true;
    },
    async locked(lock) {
      return lock.client.live(lock.key) !== undefined;
    },
  });

const runner = { describe, it, before, after, afterEach };
const only = ['lock', 'capabilities', 'expiry'];

for (const backend of [
  mapBackend('mapstore', { checkOwner: true }),
  mapBackend('sloppy', { checkOwner: false }),
]) {
  runContractSuite(
    runner,
    { backend, createClient: () => new MapStore(), closeClient: () => undefined },
    { only },
  );
}
