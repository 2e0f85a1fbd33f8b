/**
 * The CLI (`npx nestjs-sherlock`), spawned from the built package (dist/cli.js) against the real
 * test servers: inspect, list and force-release in text and JSON, --help, usage errors and exit
 * codes, the connection from a URL and from the environment, and a server that is down.
 */
import { hostname } from 'node:os';
import { LockManager } from 'nestjs-sherlock';
import { describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { cli } from '../support/cli.js';
import {
  etcdHosts,
  memcachedServerList,
  postgresUrl,
  redisUrl,
  redlockUrls,
  zookeeperServers,
} from '../support/env.js';

/** The URL the CLI takes for each server backend of the test setup. */
const urls = {
  redis: () => redisUrl(),
  etcd: () =>
    `etcd://${etcdHosts()
      .map((h) => h.replace(/^https?:\/\//u, ''))
      .join(',')}`,
  memcached: () => `memcached://${memcachedServerList().join(',')}`,
  redlock: () =>
    `redlock://${redlockUrls()
      .map((u) => u.replace(/^redis:\/\//u, ''))
      .join(',')}`,
  postgres: () => postgresUrl(),
  zookeeper: () => `zookeeper://${zookeeperServers()}`,
};

/** The module's `connection` for each of them (what an app would configure). */
const connections = {
  redis: () => redisUrl(),
  etcd: () => etcdHosts(),
  memcached: () => memcachedServerList().join(','),
  redlock: () => redlockUrls(),
  postgres: () => postgresUrl(),
  zookeeper: () => zookeeperServers(),
};

describe.concurrent('nestjs-sherlock CLI against the real servers', () => {
  it('--help prints the usage and exits 0; bad usage exits 2 with a message', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: nestjs-sherlock <command>');
    expect(help.stdout).toContain('force-release <name>');

    const none = await cli([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('a command is required');
    const unknown = await cli(['explode', '--url', redisUrl()]);
    expect(unknown).toMatchObject({ code: 2 });
    expect(unknown.stderr).toContain("unknown command 'explode'");
    const noServer = await cli(['inspect', 'x']);
    expect(noServer.code).toBe(2);
    expect(noServer.stderr).toContain('SHERLOCK_URL');
    const badScheme = await cli(['list', '--url', 'mongodb://x:1']);
    expect(badScheme.code).toBe(2);
    expect(badScheme.stderr).toContain("unknown scheme 'mongodb'");
    const badOption = await cli(['list', '--colour']);
    expect(badOption.code).toBe(2);
  });

  it.for(Object.keys(urls) as (keyof typeof urls)[])(
    '%s: inspect shows the holder; force-release needs --yes, then frees it (exit 3 when free)',
    async (backend) => {
      const url = urls[backend]();
      const namespace = uniqueName('cli');
      const manager = new LockManager({
        backend,
        connection: connections[backend](),
        namespace,
        appName: 'nightly-billing',
      });
      try {
        const lock = manager.lock('billing:close-month', { expire: 60_000 });
        expect(await lock.acquire(false)).toBe(true);

        const text = await cli([
          'inspect',
          'billing:close-month',
          '--url',
          url,
          '--namespace',
          namespace,
        ]);
        expect(text.code, text.stderr).toBe(0);
        expect(text.stdout).toContain('billing:close-month  held');
        expect(text.stdout).toContain(`${hostname()} pid ${process.pid} (nightly-billing)`);

        const json = await cli(['inspect', 'billing:close-month', '--json'], {
          SHERLOCK_URL: url,
          SHERLOCK_NAMESPACE: namespace,
        });
        expect(json.code, json.stderr).toBe(0);
        const info = JSON.parse(json.stdout) as Record<string, unknown>;
        expect(info).toMatchObject({
          name: 'billing:close-month',
          held: true,
          backend,
          holder: { pid: process.pid, app: 'nightly-billing', host: hostname() },
        });

        const refused = await cli([
          'force-release',
          'billing:close-month',
          '--url',
          url,
          '--namespace',
          namespace,
        ]);
        expect(refused.code).toBe(2);
        expect(refused.stderr).toContain('--yes');
        expect(await lock.locked()).toBe(true);

        const forced = await cli([
          'force-release',
          'billing:close-month',
          '--yes',
          '--json',
          '--url',
          url,
          '--namespace',
          namespace,
        ]);
        expect(forced.code, forced.stderr).toBe(0);
        expect(JSON.parse(forced.stdout)).toMatchObject({
          released: true,
          removed: { name: 'billing:close-month', holder: { app: 'nightly-billing' } },
        });
        expect(await manager.lock('billing:close-month').locked()).toBe(false);

        const again = await cli([
          'force-release',
          'billing:close-month',
          '--yes',
          '--url',
          url,
          '--namespace',
          namespace,
        ]);
        expect(again.code).toBe(3);
        expect(again.stdout).toContain('nobody held it');
        const free = await cli([
          'inspect',
          'billing:close-month',
          '--url',
          url,
          '--namespace',
          namespace,
        ]);
        expect(free.stdout).toContain('billing:close-month  free');
      } finally {
        await manager.close();
      }
    },
  );

  it.for(['redis', 'etcd', 'redlock', 'postgres', 'zookeeper'] as const)(
    '%s: list prints a table of the namespace, --json an array',
    async (backend) => {
      const url = urls[backend]();
      const namespace = uniqueName('clilist');
      const manager = new LockManager({
        backend,
        connection: connections[backend](),
        namespace,
        appName: 'reports',
      });
      try {
        for (const name of ['report:1', 'report:2', 'other']) {
          expect(await manager.lock(name, { expire: 60_000 }).acquire(false)).toBe(true);
        }
        const text = await cli(['list', 'report:', '--url', url, '--namespace', namespace]);
        expect(text.code, text.stderr).toBe(0);
        const lines = text.stdout.trim().split('\n');
        expect(lines[0]).toMatch(/^NAME\s+HOLDER\s+SINCE\s+TTL\s+WAITING$/u);
        expect(lines.slice(1).map((l) => l.split(/\s+/u)[0])).toEqual(['report:1', 'report:2']);
        expect(lines[1]).toContain('(reports)');

        const json = await cli(['list', '--json', '--url', url, '--namespace', namespace]);
        expect(json.code, json.stderr).toBe(0);
        expect((JSON.parse(json.stdout) as { name: string }[]).map((l) => l.name)).toEqual([
          'other',
          'report:1',
          'report:2',
        ]);
        const empty = await cli(['list', 'none:', '--url', url, '--namespace', namespace]);
        expect(empty.stdout).toBe('no locks held\n');
      } finally {
        await manager.close();
      }
    },
  );

  it('memcached list and a server that is down exit 1 with the reason', async () => {
    const mc = await cli(['list', '--url', urls.memcached()]);
    expect(mc.code).toBe(1);
    expect(mc.stderr).toContain('cannot list');
    const down = await cli(['inspect', 'x', '--url', 'redis://127.0.0.1:1', '--timeout', '2000']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/Backend error during inspect of lock 'x'/u);
  });
});
