/**
 * The files that run the sample app outside the tests: docker-compose.yml (Docker cannot run
 * here, so it is parsed and checked), the sample app's Dockerfile and nest-cli.json.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

import { ROOT } from './support/compile-sample.js';

interface ComposeService {
  image?: string;
  build?: { context?: string; dockerfile?: string };
  environment?: Record<string, string>;
  command?: string[];
  ports?: string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[]; interval?: string; timeout?: string; retries?: number };
}

interface ComposeFile {
  services: Record<string, ComposeService>;
}

const read = (file: string): string => readFileSync(join(ROOT, file), 'utf8');

/** Compose's `${VAR:-default}` interpolation, with none of the variables set. */
const interpolate = (value: string): string =>
  value.replace(/\$\{[A-Z_]+:-([^}]*)\}/g, (_, fallback: string) => fallback);

describe('docker-compose.yml', () => {
  // Compose honours YAML merge keys (`<<: *app`): the two replicas share one definition.
  const compose = parse(read('docker-compose.yml'), { merge: true }) as ComposeFile;
  const services = compose.services;

  it('parses and defines the three servers and two replicas of the app', () => {
    expect(Object.keys(services).sort()).toEqual(['app1', 'app2', 'etcd', 'memcached', 'redis']);
    expect(services['redis']?.image).toMatch(/^redis:/);
    expect(services['memcached']?.image).toMatch(/^memcached:/);
    expect(services['etcd']?.image).toMatch(/etcd:v3\./);
  });

  it('advertises an etcd client URL reachable from the other containers', () => {
    const command = services['etcd']?.command ?? [];
    expect(command).toContain('--advertise-client-urls=http://etcd:2379');
    expect(command).toContain('--listen-client-urls=http://0.0.0.0:2379');
  });

  it.each(['app1', 'app2'])('runs %s on the redis backend, built from the sample app', (name) => {
    const app = services[name];
    const env = Object.fromEntries(
      Object.entries(app?.environment ?? {}).map(([key, value]) => [key, interpolate(value)]),
    );
    expect(env).toMatchObject({
      SHERLOCK_BACKEND: 'redis',
      REDIS_URL: 'redis://redis:6379',
      MEMCACHED_SERVERS: 'memcached:11211',
      ETCD_HOSTS: 'http://etcd:2379',
    });
    expect(Object.keys(app?.depends_on ?? {}).sort()).toEqual(['etcd', 'memcached', 'redis']);
    expect(env['ACCOUNTS_STORE']).toBe('redis');
    expect(app?.build).toEqual({ context: '.', dockerfile: 'sample-app/Dockerfile' });
    expect(existsSync(join(ROOT, app?.build?.dockerfile ?? 'missing'))).toBe(true);
  });

  it('starts a replica only once every server it depends on is healthy', () => {
    for (const name of ['app1', 'app2']) {
      const dependsOn = services[name]?.depends_on;
      // The long form: the short list form only waits for the containers to start.
      expect(Array.isArray(dependsOn)).toBe(false);
      for (const [server, { condition }] of Object.entries(dependsOn ?? {})) {
        expect(condition, `${name} depends_on ${server}`).toBe('service_healthy');
        const check = services[server]?.healthcheck;
        expect(check, `${server} has a healthcheck`).toBeDefined();
        expect(Array.isArray(check?.test) && ['CMD', 'CMD-SHELL'].includes(check.test[0]!)).toBe(
          true,
        );
        // Retried for a while (a server may take seconds to start), not forever.
        expect(check?.retries).toBeGreaterThanOrEqual(5);
        expect(check?.interval).toMatch(/^\d+s$/);
      }
    }
  });

  it.each([
    ['redis', /\bredis-cli\b.*\bping\b/],
    ['memcached', /\b11211\b.*VERSION|version.*11211/],
    ['etcd', /\betcdctl\b.*\bendpoint\b.*\bhealth\b/],
  ])('checks %s with a command that asks the server itself', (server, command) => {
    const test = services[server]?.healthcheck?.test;
    expect(Array.isArray(test) ? test.slice(1).join(' ') : test).toMatch(command);
  });

  it('publishes the two replicas on different host ports', () => {
    const host = (name: string) => services[name]?.ports?.[0]?.split(':')[0];
    expect(host('app1')).toBeDefined();
    expect(host('app1')).not.toBe(host('app2'));
  });
});

describe('running the sample app', () => {
  it('nest-cli.json builds sample-app/src with its tsconfig, to the file the Dockerfile runs', () => {
    const cli = JSON.parse(read('nest-cli.json')) as {
      sourceRoot: string;
      entryFile: string;
      compilerOptions: { tsConfigPath: string };
    };
    expect(existsSync(join(ROOT, cli.sourceRoot, `${cli.entryFile}.ts`))).toBe(true);
    const tsconfig = read(cli.compilerOptions.tsConfigPath);
    expect(tsconfig).toMatch(/"outDir": "dist"/);
    expect(read('sample-app/Dockerfile')).toContain('CMD ["node", "sample-app/dist/main.js"]');
  });
});
