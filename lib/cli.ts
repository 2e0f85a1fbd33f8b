#!/usr/bin/env node
/**
 * `npx nestjs-sherlock inspect|list|force-release`: look at the locks on a server from a shell,
 * with the same connection settings as the module (a URL, or the environment). See
 * docs/inspection.md. Exit codes: 0 done; 1 the server failed or the backend cannot do it;
 * 2 bad usage; 3 force-release found nothing to release.
 */
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { type BackendName, type LockInfo, LockManager } from './sherlock.js';

const HELP = `Usage: nestjs-sherlock <command> [options]

Commands:
  inspect <name>          who holds the lock, since when, time left, fencing token, waiters
  list [prefix]           the held locks of the namespace (whose names start with prefix)
  force-release <name>    delete the lock whoever holds it (needs --yes); wakes the next waiter

Connection (like SherlockModule's backend + connection):
  --url <url>             redis://host:6379, rediss://...,
                          redis+sentinel://host:26379[,host:26379]/mastername,
                          etcd://host:2379[,host:2379], etcds://...,
                          memcached://host:11211[,host:11211],
                          redlock://host:6379,host:6380,host:6381,
                          postgres://user:password@host:5432/database,
                          zookeeper://host:2181[,host:2181][/chroot]
  --backend <name>        redis | etcd | memcached | redlock | postgres | zookeeper
                          (with --connection)
  --connection <value>    the backend's connection string
  --namespace <ns>        the namespace of the locks (as in the module's options)
  Environment: SHERLOCK_URL, SHERLOCK_BACKEND, SHERLOCK_CONNECTION, SHERLOCK_NAMESPACE.

Options:
  --json                  print JSON instead of text
  --limit <n>             list at most n locks (default 1000)
  --yes                   confirm force-release
  --timeout <ms>          the deadline of each server operation (default 5000)
  -h, --help              this help

Exit codes: 0 done, 1 server error or not supported, 2 bad usage, 3 nothing to force-release.
`;

class UsageError extends Error {}

interface Target {
  backend: string;
  connection: string | string[];
}

/** The backend and connection settings from a URL. */
export function targetOfUrl(url: string): Target {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/iu.exec(url.trim());
  if (!match) throw new UsageError(`--url ${url}: expected scheme://host:port`);
  const scheme = (match[1] ?? '').toLowerCase();
  const rest = match[2] ?? '';
  const hosts = rest
    .split(',')
    .map((h) => h.trim().replace(/\/$/u, ''))
    .filter((h) => h.length > 0);
  switch (scheme) {
    case 'redis':
    case 'rediss':
    case 'redis+sentinel':
      return { backend: 'redis', connection: url.trim() };
    case 'etcd':
    case 'etcds':
      return {
        backend: 'etcd',
        connection: hosts.map((h) => `${scheme === 'etcds' ? 'https' : 'http'}://${h}`).join(','),
      };
    case 'memcached':
      return { backend: 'memcached', connection: hosts.join(',') };
    case 'redlock':
      return { backend: 'redlock', connection: hosts.map((h) => `redis://${h}`) };
    case 'postgres':
    case 'postgresql':
      return { backend: 'postgres', connection: url.trim() };
    case 'zookeeper':
      // A ZooKeeper connect string: `host:port,host:port`, with an optional `/chroot` at the end.
      return { backend: 'zookeeper', connection: rest.trim().replace(/\/$/u, '') };
    default:
      throw new UsageError(
        `--url ${url}: unknown scheme '${scheme}'; expected redis, rediss, redis+sentinel, etcd, etcds, memcached, redlock, postgres or zookeeper`,
      );
  }
}

function ago(date: Date | null): string {
  if (!date) return 'unknown';
  const s = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
  const span =
    s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
  return `${date.toISOString()} (${span} ago)`;
}

function ttlText(ttl: number | null): string {
  if (ttl === null) return 'unknown';
  if (ttl < 0) return 'never expires';
  return `${(ttl / 1000).toFixed(1)} s`;
}

function holderText(info: LockInfo): string {
  const h = info.holder;
  if (!h) return '-';
  const who = `${h.host ?? '?'} pid ${h.pid ?? '?'}`;
  return h.app ? `${who} (${h.app})` : who;
}

function describe(info: LockInfo): string {
  if (!info.held) return `${info.name}  free\n`;
  return [
    `${info.name}  held`,
    `  holder   ${holderText(info)}`,
    `  since    ${ago(info.holder?.acquiredAt ?? null)}`,
    `  ttl      ${ttlText(info.ttl)}`,
    `  fencing  ${info.fencingToken ?? 'unknown'}`,
    `  waiting  ${info.waiting ?? 'unknown'}`,
    `  key      ${JSON.stringify(info.key)} (${info.backend})`,
    '',
  ].join('\n');
}

function table(locks: readonly LockInfo[]): string {
  if (locks.length === 0) return 'no locks held\n';
  const rows = [
    ['NAME', 'HOLDER', 'SINCE', 'TTL', 'WAITING'],
    ...locks.map((l) => [
      l.name,
      holderText(l),
      l.holder?.acquiredAt?.toISOString() ?? '?',
      ttlText(l.ttl),
      l.waiting === null ? '?' : String(l.waiting),
    ]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return `${rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')}\n`;
}

/** Runs the CLI; resolves the exit code. `out`/`err` default to the process's streams. */
export async function main(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
  out: (text: string) => void = (t) => process.stdout.write(t),
  err: (text: string) => void = (t) => process.stderr.write(t),
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        backend: { type: 'string' },
        connection: { type: 'string' },
        namespace: { type: 'string' },
        json: { type: 'boolean', default: false },
        yes: { type: 'boolean', default: false },
        limit: { type: 'string' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (e) {
    err(`${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, arg] = positionals;
  if (values.help || command === 'help') {
    out(HELP);
    return 0;
  }
  let manager: LockManager | undefined;
  try {
    if (command === undefined) throw new UsageError('a command is required');
    if (!['inspect', 'list', 'force-release'].includes(command)) {
      throw new UsageError(`unknown command '${command}'`);
    }
    if (command !== 'list' && (arg === undefined || arg === '')) {
      throw new UsageError(`${command} needs a lock name`);
    }
    if (positionals.length > 2) throw new UsageError(`unexpected argument '${positionals[2]}'`);
    const url = values.url ?? env['SHERLOCK_URL'];
    const backend = values.backend ?? env['SHERLOCK_BACKEND'];
    const connection = values.connection ?? env['SHERLOCK_CONNECTION'];
    let target: Target;
    if (url !== undefined && url !== '') target = targetOfUrl(url);
    else if (backend !== undefined && backend !== '') {
      target = { backend, connection: connection ?? '' };
      if (target.connection === '') {
        throw new UsageError(`--backend ${backend} needs --connection (or SHERLOCK_CONNECTION)`);
      }
    } else throw new UsageError('no server given: use --url, or SHERLOCK_URL in the environment');
    if (
      target.backend === 'memory' ||
      target.backend === 'threads' ||
      target.backend === 'cluster'
    ) {
      throw new UsageError(
        `the ${target.backend} backend lives inside its process: nothing to reach`,
      );
    }
    const namespace = values.namespace ?? env['SHERLOCK_NAMESPACE'];
    const timeout = values.timeout === undefined ? 5_000 : Number(values.timeout);
    if (!Number.isSafeInteger(timeout) || timeout < 1) {
      throw new UsageError(`--timeout ${values.timeout}: expected a whole number of ms >= 1`);
    }
    const limit = values.limit === undefined ? undefined : Number(values.limit);
    if (command === 'force-release' && !values.yes) {
      throw new UsageError(
        `force-release deletes '${arg}' whoever holds it; the holder learns only at its next renewal. Add --yes to do it`,
      );
    }
    manager = new LockManager({
      // Checked at run time (an unknown name is a RangeError naming the registered ones).
      backend: target.backend as BackendName,
      connection: target.connection,
      operationTimeout: timeout,
      appName: 'nestjs-sherlock-cli',
      ...(namespace === undefined || namespace === '' ? {} : { namespace }),
    });
    if (command === 'inspect') {
      const info = await manager.inspect(arg ?? '');
      out(values.json ? `${JSON.stringify(info, null, 2)}\n` : describe(info));
      return 0;
    }
    if (command === 'list') {
      const locks = await manager.list(arg ?? '', limit === undefined ? undefined : { limit });
      out(values.json ? `${JSON.stringify(locks, null, 2)}\n` : table(locks));
      return 0;
    }
    const removed = await manager.forceRelease(arg ?? '');
    if (values.json) out(`${JSON.stringify({ released: removed !== null, removed }, null, 2)}\n`);
    else if (removed === null) out(`${arg}: nobody held it; nothing released\n`);
    else out(`released ${arg}, which was held by ${holderText(removed)}\n`);
    return removed === null ? 3 : 0;
  } catch (e) {
    if (e instanceof UsageError) {
      err(`nestjs-sherlock: ${e.message}\nRun nestjs-sherlock --help for usage.\n`);
      return 2;
    }
    const error = e as Error;
    const cause = (error as { cause?: unknown }).cause;
    err(
      `nestjs-sherlock: ${error.message}${cause instanceof Error ? ` (${cause.message})` : ''}\n`,
    );
    return error instanceof TypeError || error instanceof RangeError ? 2 : 1;
  } finally {
    await manager?.close().catch(() => undefined);
  }
}

/** Whether this file is the program (`node dist/cli.js`, `npx nestjs-sherlock`), not imported. */
function isMain(): boolean {
  const invoked = process.argv[1];
  if (invoked === undefined) return false;
  try {
    return pathToFileURL(realpathSync(invoked)).href === import.meta.url;
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`nestjs-sherlock: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
