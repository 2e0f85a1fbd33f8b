#!/usr/bin/env node
// Makes sure the server binaries the tests need are installed: redis-server, memcached, etcd,
// postgresql, zookeeper (and java).
//
// A backend whose variable is set (REDIS_URL, MEMCACHED_SERVERS, ETCD_HOSTS) is used remotely and
// needs no local binary. Missing binaries are installed with apt-get when running as root on a
// Debian-like system; otherwise this prints what to install and exits 1.
//
// The tests start their own server processes on free ports (test/support/servers.ts), so daemons
// started by the packages on the standard ports do not matter; the install just must not fail
// because a service cannot be started (no systemd in containers): see withPolicyRcD().
//
// Plain Node, no dependencies.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

const SERVERS = [
  { name: 'redis', bin: 'redis-server', pkg: 'redis-server', envVar: 'REDIS_URL' },
  { name: 'memcached', bin: 'memcached', pkg: 'memcached', envVar: 'MEMCACHED_SERVERS' },
  { name: 'etcd', bin: 'etcd', pkg: 'etcd-server', envVar: 'ETCD_HOSTS' },
  // PostgreSQL's binaries are out of PATH (/usr/lib/postgresql/<version>/bin); postgresql-common,
  // which the postgresql package brings, puts pg_ctlcluster in /usr/bin.
  { name: 'postgresql', bin: 'pg_ctlcluster', pkg: 'postgresql', envVar: 'POSTGRES_URL' },
  // ZooKeeper runs on Java: Debian's zookeeper package (its jars in /usr/share/java) and a JRE.
  { name: 'java', bin: 'java', pkg: 'default-jre-headless', envVar: 'ZOOKEEPER_SERVERS' },
  // (its only command in PATH is zooinspector: its presence says the package is installed)
  { name: 'zookeeper', bin: 'zooinspector', pkg: 'zookeeper', envVar: 'ZOOKEEPER_SERVERS' },
  // Tools: redis-cli forms the local Redis Cluster, openssl makes the TLS test's certificates.
  { name: 'redis-cli', bin: 'redis-cli', pkg: 'redis-tools', envVar: undefined },
  { name: 'openssl', bin: 'openssl', pkg: 'openssl', envVar: undefined },
  // The live lock page's test (test/e2e/locks-page.e2e.spec.ts) drives Debian's Chromium with
  // playwright-core.
  { name: 'chromium', bin: 'chromium', pkg: 'chromium', envVar: undefined },
];

const EXTRA_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin'];
const POLICY_RC_D = '/usr/sbin/policy-rc.d';

/** @param {string} name */
function findBinary(name) {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...EXTRA_DIRS];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function needed() {
  return SERVERS.filter((server) => !server.envVar || !process.env[server.envVar]?.trim());
}

function missing() {
  return needed().filter((server) => !findBinary(server.bin));
}

/** @param {string} command @param {string[]} args @param {NodeJS.ProcessEnv} [env] */
function run(command, args, env = process.env) {
  console.log(`$ ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { stdio: 'inherit', env });
  if (result.error) throw result.error;
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (exit ${result.status ?? result.signal})`);
  }
}

/**
 * Runs `fn` with a policy-rc.d that forbids starting services (exit 101), so that the packages'
 * postinst scripts do not try to start redis/memcached/etcd (which fails without an init system).
 * An existing policy-rc.d (Docker images ship one) is left alone.
 * @param {() => void} fn
 */
function withPolicyRcD(fn) {
  const created = !existsSync(POLICY_RC_D);
  if (created) writeFileSync(POLICY_RC_D, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    fn();
  } finally {
    if (created) {
      try {
        unlinkSync(POLICY_RC_D);
      } catch {
        // best effort
      }
    }
  }
}

function describe(servers) {
  return servers.map((server) => `${server.bin} (package ${server.pkg})`).join(', ');
}

function printHelp(servers) {
  const packages = servers.map((server) => server.pkg).join(' ');
  const sudo = isRoot() ? '' : 'sudo ';
  console.error(`Missing test server binaries: ${describe(servers)}.`);
  console.error('Install them (Debian/Ubuntu):');
  console.error(
    `  ${sudo}apt-get update && ${sudo}env DEBIAN_FRONTEND=noninteractive ` +
      `apt-get install -y --no-install-recommends ${packages}`,
  );
  console.error('or point the tests at running servers instead:');
  for (const server of servers.filter((each) => each.envVar)) {
    const example = {
      REDIS_URL: 'redis://127.0.0.1:6379',
      MEMCACHED_SERVERS: '127.0.0.1:11211',
      ETCD_HOSTS: 'http://127.0.0.1:2379',
    }[server.envVar];
    console.error(`  export ${server.envVar}=${example}`);
  }
}

function isRoot() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function main() {
  let absent = missing();
  if (absent.length > 0) {
    const aptGet = findBinary('apt-get');
    if (!isRoot() || !aptGet) {
      printHelp(absent);
      if (!aptGet)
        console.error('(apt-get not found: install the servers with your package manager)');
      return 1;
    }
    console.log(`Installing test servers: ${describe(absent)}`);
    try {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      withPolicyRcD(() => {
        run(aptGet, ['update'], env);
        run(
          aptGet,
          ['install', '-y', '--no-install-recommends', ...absent.map((server) => server.pkg)],
          env,
        );
      });
    } catch (error) {
      console.error(error instanceof Error ? error.message : String(error));
    }
    absent = missing();
    if (absent.length > 0) {
      console.error('Installation did not provide every binary.');
      printHelp(absent);
      return 1;
    }
  }

  const parts = SERVERS.map((server) =>
    process.env[server.envVar]?.trim()
      ? `${server.name}: ${server.envVar}`
      : `${server.name}: ${findBinary(server.bin)}`,
  );
  console.log(`Test servers OK (${parts.join(', ')})`);
  return 0;
}

process.exitCode = main();
