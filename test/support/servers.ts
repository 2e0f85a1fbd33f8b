/**
 * Real Redis / Memcached / Etcd server processes for the tests.
 *
 * Every server runs on 127.0.0.1 on a free port, with its own temporary directory (data + log)
 * under os.tmpdir(). Servers can be stopped, killed with any signal, paused (SIGSTOP) and
 * restarted on the same port with the same data directory. Whatever is still running when the
 * Node process exits is SIGKILLed, so no server outlives the test run.
 *
 * Node built-ins only: this file is imported both by the Vitest global setup and by tests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  chownSync,
  closeSync,
  constants as fsConstants,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const HOST = '127.0.0.1';
export const DEFAULT_START_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;

export type ServerKind = 'redis' | 'memcached' | 'etcd' | 'postgres' | 'zookeeper' | 'sentinel';

export interface CommonServerOptions {
  /** Path of the server binary; looked up in PATH and the usual system dirs by default. */
  bin?: string;
  /** Extra command-line arguments appended after the defaults. */
  args?: readonly string[];
  /** Extra environment variables for the server process. */
  env?: Readonly<Record<string, string>>;
  /** How long to wait for the server to answer (default 20 s). */
  startTimeoutMs?: number;
}

export interface RedisOptions extends CommonServerOptions {
  /** Sets `--requirepass`; the readiness probe and `url` then use it. */
  password?: string;
  /** `--appendonly yes` (data survives kill/restart). Default false. */
  appendonly?: boolean;
  /** `--replicaof HOST PORT`: starts as a replica of that server (its password, if any, too). */
  replicaOf?: Pick<RedisServer, 'host' | 'port' | 'password'>;
}

export interface MemcachedOptions extends CommonServerOptions {
  /** `-m`, memory in megabytes (default 64). */
  memoryMb?: number;
}

export type EtcdOptions = CommonServerOptions;

export interface RestartOptions {
  /** Signal used to end the running process first (default: graceful SIGTERM, SIGKILL fallback). */
  signal?: NodeJS.Signals;
}

/** A real server process managed by the tests. */
export interface ServerHandle {
  readonly kind: ServerKind;
  readonly host: string;
  /** The port clients connect to. Stays the same across restarts. */
  readonly port: number;
  /** Temporary directory holding `data/` and the log file; removed by `stop()`. */
  readonly dir: string;
  readonly dataDir: string;
  readonly logFile: string;
  /** PID of the current process, undefined when not running. */
  readonly pid: number | undefined;
  readonly running: boolean;
  readonly paused: boolean;
  /** Starts the process again (same port, same data dir) if it is not running; waits until ready. */
  start(): Promise<void>;
  /** Ends the process (SIGTERM, SIGKILL after 5 s), waits for it and removes the temp dir. */
  stop(): Promise<void>;
  /** Sends `signal` (default SIGKILL) and waits for the exit. Keeps the data dir for `restart()`. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Ends the process if running (see RestartOptions), then starts it again and waits until ready. */
  restart(options?: RestartOptions): Promise<void>;
  /** SIGSTOP: the process keeps its sockets but stops answering (simulates a hung server). */
  pause(): void;
  /** SIGCONT after `pause()`. */
  resume(): void;
  /** The last `lines` lines of the server's log. */
  logTail(lines?: number): string;
}

export interface RedisServer extends ServerHandle {
  readonly kind: 'redis';
  /** `redis://127.0.0.1:PORT` (with `:password@` when a password is set). */
  readonly url: string;
  readonly password: string | undefined;
}

export interface MemcachedServer extends ServerHandle {
  readonly kind: 'memcached';
  /** `127.0.0.1:PORT`, the format of MEMCACHED_SERVERS. */
  readonly servers: string;
}

export interface EtcdServer extends ServerHandle {
  readonly kind: 'etcd';
  /** `http://127.0.0.1:CLIENT_PORT`, the format of ETCD_HOSTS. */
  readonly url: string;
  readonly peerPort: number;
}

// ---------------------------------------------------------------------------------------------
// Process registry: SIGKILL everything still running when this Node process goes away.
// Kept on globalThis so that several module instances (Vitest isolation) share one registry.

interface Killable {
  emergencyKill(): void;
}

interface Registry {
  live: Set<Killable>;
}

const REGISTRY_KEY = Symbol.for('nestjs-sherlock.test-servers.registry');

function registry(): Registry {
  const holder = globalThis as typeof globalThis & { [REGISTRY_KEY]?: Registry };
  const existing = holder[REGISTRY_KEY];
  if (existing) return existing;
  const created: Registry = { live: new Set() };
  holder[REGISTRY_KEY] = created;
  const killAll = (): void => {
    for (const server of created.live) server.emergencyKill();
    created.live.clear();
  };
  process.on('exit', killAll);
  // In a forked test worker: the IPC channel closes when the Vitest main process goes away.
  if (process.connected) process.once('disconnect', killAll);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAll();
      // If nobody else handles the signal, restore the default behaviour (terminate).
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
  return created;
}

// ---------------------------------------------------------------------------------------------
// Helpers

const EXTRA_BIN_DIRS = ['/usr/bin', '/usr/sbin', '/usr/local/bin', '/usr/local/sbin'];

/** Finds an executable in PATH or in /usr/bin, /usr/sbin, /usr/local/bin, /usr/local/sbin. */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), ...EXTRA_BIN_DIRS];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

const BINARIES: Record<ServerKind, { bin: string; pkg: string; envVar: string }> = {
  redis: { bin: 'redis-server', pkg: 'redis-server', envVar: 'REDIS_URL' },
  memcached: { bin: 'memcached', pkg: 'memcached', envVar: 'MEMCACHED_SERVERS' },
  etcd: { bin: 'etcd', pkg: 'etcd-server', envVar: 'ETCD_HOSTS' },
  postgres: { bin: 'postgres', pkg: 'postgresql', envVar: 'POSTGRES_URL' },
  zookeeper: { bin: 'java', pkg: 'zookeeper default-jre-headless', envVar: 'ZOOKEEPER_SERVERS' },
  // `redis-server <conf> --sentinel` is Redis Sentinel (what Debian's redis-sentinel runs).
  sentinel: { bin: 'redis-server', pkg: 'redis-server', envVar: 'REDIS_URL' },
};

function requireBinary(kind: ServerKind, override: string | undefined): string {
  if (override) return override;
  const { bin, pkg, envVar } = BINARIES[kind];
  const found = findBinary(bin);
  if (found) return found;
  throw new Error(
    `${bin} not found (looked in PATH and ${EXTRA_BIN_DIRS.join(', ')}). ` +
      `Install it with \`node scripts/ensure-servers.mjs\` as root ` +
      `(apt-get install ${pkg}), or set ${envVar} to use an existing server.`,
  );
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function listenOnFreePort(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host: HOST, exclusive: true }, () => resolve(server));
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** `count` distinct free TCP ports on 127.0.0.1 (all held open at once, then released). */
export async function getFreePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listenOnFreePort());
    return servers.map((server) => (server.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map(closeServer));
  }
}

export async function getFreePort(): Promise<number> {
  const [port] = await getFreePorts(1);
  if (port === undefined) throw new Error('could not allocate a free port');
  return port;
}

/**
 * Opens a TCP connection, writes `payload` and collects the answer until `isComplete(received)`
 * is true (or the peer closes the connection). Rejects on error or after `timeoutMs`.
 */
export function tcpExchange(
  host: string,
  port: number,
  payload: string | Buffer,
  isComplete: (received: string) => boolean,
  timeoutMs = 2_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = '';
    let settled = false;
    const socket = connect({ host, port });
    const finish = (error: Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(received);
    };
    const timer = setTimeout(
      () =>
        finish(
          new Error(
            `no complete answer from ${host}:${port} within ${timeoutMs} ms` +
              (received ? ` (got ${JSON.stringify(received.slice(0, 200))})` : ''),
          ),
        ),
      timeoutMs,
    );
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (isComplete(received)) finish(undefined);
    });
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(undefined));
  });
}

// ---------------------------------------------------------------------------------------------
// Minimal RESP (Redis protocol) client, enough for tests that talk to Redis directly.

export interface RespError {
  readonly error: string;
}
export type RespValue = string | number | null | RespError | RespValue[];

export interface RedisTarget {
  host?: string;
  port: number;
  password?: string | undefined;
}

export function encodeResp(args: readonly (string | number)[]): string {
  let out = `*${args.length}\r\n`;
  for (const arg of args) {
    const value = String(arg);
    out += `$${Buffer.byteLength(value)}\r\n${value}\r\n`;
  }
  return out;
}

interface Parsed {
  value: RespValue;
  next: number;
}

/** Parses one RESP value from `buf` at `offset`; undefined when incomplete. */
export function parseResp(buf: Buffer, offset = 0): Parsed | undefined {
  const lineEnd = buf.indexOf('\r\n', offset);
  if (lineEnd < 0) return undefined;
  const type = String.fromCharCode(buf[offset] ?? 0);
  const line = buf.toString('utf8', offset + 1, lineEnd);
  const afterLine = lineEnd + 2;
  switch (type) {
    case '+':
      return { value: line, next: afterLine };
    case '-':
      return { value: { error: line }, next: afterLine };
    case ':':
      return { value: Number(line), next: afterLine };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, next: afterLine };
      if (buf.length < afterLine + length + 2) return undefined;
      return {
        value: buf.toString('utf8', afterLine, afterLine + length),
        next: afterLine + length + 2,
      };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, next: afterLine };
      const items: RespValue[] = [];
      let next = afterLine;
      for (let i = 0; i < count; i++) {
        const item = parseResp(buf, next);
        if (!item) return undefined;
        items.push(item.value);
        next = item.next;
      }
      return { value: items, next };
    }
    default:
      throw new Error(`invalid RESP reply: ${JSON.stringify(buf.toString('utf8', offset))}`);
  }
}

function parseAll(buf: Buffer, expected: number): RespValue[] | undefined {
  const values: RespValue[] = [];
  let offset = 0;
  while (values.length < expected) {
    const parsed = parseResp(buf, offset);
    if (!parsed) return undefined;
    values.push(parsed.value);
    offset = parsed.next;
  }
  return values;
}

/**
 * Sends the commands pipelined over one new connection (after `AUTH` when `password` is set)
 * and returns one reply per command. Error replies come back as `{ error }`.
 */
export function redisCommands(
  target: RedisTarget,
  commands: readonly (readonly (string | number)[])[],
  timeoutMs = 2_000,
): Promise<RespValue[]> {
  const all = target.password ? [['AUTH', target.password], ...commands] : [...commands];
  const host = target.host ?? HOST;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const socket = connect({ host, port: target.port });
    const finish = (error: Error | undefined, values?: RespValue[]): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve((values ?? []).slice(all.length - commands.length));
    };
    const timer = setTimeout(
      () => finish(new Error(`redis ${host}:${target.port}: no reply within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('connect', () => socket.write(all.map(encodeResp).join('')));
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      try {
        const values = parseAll(Buffer.concat(chunks), all.length);
        if (values) finish(undefined, values);
      } catch (error) {
        finish(error instanceof Error ? error : new Error(String(error)));
      }
    });
    socket.on('error', (error) => finish(error));
    socket.on('close', () =>
      finish(new Error(`redis ${host}:${target.port}: connection closed before all replies`)),
    );
  });
}

export async function redisCommand(
  target: RedisTarget,
  args: readonly (string | number)[],
  timeoutMs = 2_000,
): Promise<RespValue> {
  const [reply] = await redisCommands(target, [args], timeoutMs);
  return reply ?? null;
}

// ---------------------------------------------------------------------------------------------
// Managed process

interface ProcessSpec {
  kind: ServerKind;
  bin: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  startTimeoutMs: number;
  /** Resolves true when the server answers properly. May throw / return false while starting. */
  probe: () => Promise<boolean>;
  /** Runs the server as this user (PostgreSQL refuses to run as root). */
  user?: { uid: number; gid: number };
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

class StartupError extends Error {
  constructor(
    message: string,
    readonly addressInUse: boolean,
  ) {
    super(message);
    this.name = 'StartupError';
  }
}

/**
 * A start that may work if tried again a moment later: the port is still taken, or (PostgreSQL
 * restarted right after its postmaster was killed) a backend of the old one has not exited yet
 * and still holds the shared memory block (seen once in a CI run: "pre-existing shared memory
 * block ... is still in use").
 */
const ADDRESS_IN_USE =
  /address already in use|EADDRINUSE|bind: |pre-existing shared memory block .* is still in use/i;

class ManagedServer implements ServerHandle, Killable {
  readonly host = HOST;
  readonly dir: string;
  readonly dataDir: string;
  readonly logFile: string;
  private child: ChildProcess | undefined;
  private exited: Promise<Exit> | undefined;
  private alive = false;
  private isPaused = false;
  private removed = false;
  private readonly spec: ProcessSpec;

  constructor(
    readonly kind: ServerKind,
    readonly port: number,
    makeSpec: (dataDir: string) => ProcessSpec,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), `sherlock-${kind}-`));
    this.dataDir = join(this.dir, 'data');
    mkdirSync(this.dataDir, { mode: 0o700 });
    this.logFile = join(this.dir, `${kind}.log`);
    this.spec = makeSpec(this.dataDir);
    registry().live.add(this);
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return this.alive;
  }

  get paused(): boolean {
    return this.running && this.isPaused;
  }

  async start(): Promise<void> {
    if (this.removed) throw new Error(`${this.kind} on port ${this.port} was stopped for good`);
    if (this.running) return;
    // The port may briefly be held by someone else (e.g. right after a kill): retry a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.startOnce();
        return;
      } catch (error) {
        if (!(error instanceof StartupError) || !error.addressInUse || attempt >= 5) throw error;
        await sleep(300 * attempt);
      }
    }
  }

  private async startOnce(): Promise<void> {
    const { bin, args, env, startTimeoutMs, probe, user } = this.spec;
    const fd = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      writeSync(fd, `\n### ${new Date().toISOString()} ${bin} ${args.join(' ')}\n`);
      child = spawn(bin, args, {
        cwd: this.dir,
        env,
        detached: false,
        stdio: ['ignore', fd, fd],
        ...(user ?? {}),
      });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.isPaused = false;
    this.alive = child.pid !== undefined;
    const state: { exit?: Exit } = {};
    this.exited = new Promise<Exit>((resolve) => {
      const done = (exit: Exit): void => {
        if (this.child === child) this.alive = false;
        state.exit = exit;
        resolve(exit);
      };
      child.once('exit', (code, signal) => done({ code, signal }));
      child.on('error', (error) => {
        // spawn failure (e.g. ENOENT): no process, maybe no 'exit' event either
        if (child.pid === undefined) done({ code: null, signal: null, error });
      });
    });

    const deadline = Date.now() + startTimeoutMs;
    let lastProbeError = '';
    while (Date.now() < deadline) {
      const exit = state.exit;
      if (exit) {
        const tail = this.logTail();
        const how = exit.error
          ? `could not be spawned: ${exit.error.message}`
          : `exited during startup (code ${exit.code}, signal ${exit.signal})`;
        throw new StartupError(
          `${this.kind} (${bin}) on port ${this.port} ${how}.\n` + `Log ${this.logFile}:\n${tail}`,
          ADDRESS_IN_USE.test(tail),
        );
      }
      try {
        if (await probe()) return;
        lastProbeError = 'not ready yet';
      } catch (error) {
        lastProbeError = error instanceof Error ? error.message : String(error);
      }
      await sleep(100);
    }
    await this.terminate('SIGKILL');
    throw new StartupError(
      `${this.kind} (${bin}) did not answer on ${HOST}:${this.port} within ${startTimeoutMs} ms ` +
        `(last probe: ${lastProbeError}).\nLog ${this.logFile}:\n${this.logTail()}`,
      false,
    );
  }

  /** Sends `signal`, waits for the exit; escalates to SIGKILL after STOP_GRACE_MS. */
  private async terminate(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    const exited = this.exited;
    if (!child || !exited || !this.running) return;
    if (this.isPaused && signal !== 'SIGKILL') child.kill('SIGCONT');
    this.isPaused = false;
    child.kill(signal);
    const timedOut = Symbol('timeout');
    const result = await Promise.race([exited, sleep(STOP_GRACE_MS, timedOut)]);
    if (result === timedOut) {
      child.kill('SIGKILL');
      await exited;
    }
  }

  async stop(): Promise<void> {
    await this.terminate('SIGTERM');
    if (!this.removed) {
      this.removed = true;
      registry().live.delete(this);
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.terminate(signal);
  }

  async restart(options: RestartOptions = {}): Promise<void> {
    await this.terminate(options.signal ?? 'SIGTERM');
    await this.start();
  }

  pause(): void {
    if (!this.running || !this.child)
      throw new Error(`${this.kind} on port ${this.port} is not running`);
    this.child.kill('SIGSTOP');
    this.isPaused = true;
  }

  resume(): void {
    if (!this.running || !this.child)
      throw new Error(`${this.kind} on port ${this.port} is not running`);
    this.child.kill('SIGCONT');
    this.isPaused = false;
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch (error) {
      return `(no log: ${error instanceof Error ? error.message : String(error)})`;
    }
  }

  emergencyKill(): void {
    const pid = this.pid;
    if (pid !== undefined) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    try {
      rmSync(this.dir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
}

/**
 * Allocates ports, creates the server and starts it; when the very first start fails because a
 * port was taken in the meantime, retries with new ports.
 */
async function createAndStart<T extends ManagedServer>(
  portCount: number,
  create: (ports: number[]) => T,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const server = create(await getFreePorts(portCount));
    try {
      await server.start();
      return server;
    } catch (error) {
      await server.stop().catch(() => undefined);
      if (!(error instanceof StartupError) || !error.addressInUse || attempt >= 3) throw error;
    }
  }
}

function childEnv(extra: Readonly<Record<string, string>> | undefined): NodeJS.ProcessEnv {
  return { ...process.env, ...extra };
}

// ---------------------------------------------------------------------------------------------
// Redis

class ManagedRedis extends ManagedServer implements RedisServer {
  declare readonly kind: 'redis';
  readonly url: string;

  constructor(
    port: number,
    readonly password: string | undefined,
    options: RedisOptions,
  ) {
    const bin = requireBinary('redis', options.bin);
    super('redis', port, (dataDir) => ({
      kind: 'redis',
      bin,
      args: [
        '--port',
        String(port),
        '--bind',
        HOST,
        '--dir',
        dataDir,
        '--save',
        '',
        '--appendonly',
        options.appendonly ? 'yes' : 'no',
        '--protected-mode',
        'no',
        '--daemonize',
        'no',
        ...(password !== undefined ? ['--requirepass', password] : []),
        ...replicaArgs(options.replicaOf),
        ...(options.args ?? []),
      ],
      env: childEnv(options.env),
      startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
      probe: async () => (await redisCommand({ port, password }, ['PING'], 1_000)) === 'PONG',
    }));
    this.url = password
      ? `redis://:${encodeURIComponent(password)}@${HOST}:${port}`
      : `redis://${HOST}:${port}`;
  }
}

/** `--replicaof` (and `--masterauth`) for a replica of `master`. */
function replicaArgs(master: RedisOptions['replicaOf']): string[] {
  if (master === undefined) return [];
  const auth = master.password === undefined ? [] : ['--masterauth', master.password];
  return ['--replicaof', master.host, String(master.port), ...auth];
}

/**
 * Starts `redis-server --port N --bind 127.0.0.1 --dir <tmp>/data --save '' --appendonly no
 * --protected-mode no` (+ `--requirepass`, `--appendonly yes`, `--replicaof`, `args` as
 * requested). A replica answers PING before its first sync: wait for the master to list it.
 */
export function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  return createAndStart(1, ([port]) => new ManagedRedis(port ?? 0, options.password, options));
}

/** Settings of a Sentinel watching one master (see startSentinel). */
export interface SentinelOptions extends CommonServerOptions {
  /** The master's name (default `mymaster`). */
  name?: string;
  /** Sentinels that must agree the master is down (default 2). */
  quorum?: number;
  /** `down-after-milliseconds` (default 1000). */
  downAfterMs?: number;
  /** `failover-timeout` (default 3000). */
  failoverTimeoutMs?: number;
}

export interface SentinelServer extends ServerHandle {
  readonly kind: 'sentinel';
  readonly name: string;
}

class ManagedSentinel extends ManagedServer implements SentinelServer {
  declare readonly kind: 'sentinel';
  readonly name: string;

  constructor(port: number, masterPort: number, options: SentinelOptions) {
    const bin = requireBinary('sentinel', options.bin);
    const name = options.name ?? 'mymaster';
    super('sentinel', port, (dataDir) => {
      // Sentinel rewrites its configuration file (the state it learns), so it is a file of ours.
      const conf = join(dataDir, 'sentinel.conf');
      writeFileSync(
        conf,
        [
          `port ${port}`,
          `bind ${HOST}`,
          'protected-mode no',
          'daemonize no',
          `dir ${dataDir}`,
          `sentinel monitor ${name} ${HOST} ${masterPort} ${options.quorum ?? 2}`,
          `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1_000}`,
          `sentinel failover-timeout ${name} ${options.failoverTimeoutMs ?? 3_000}`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      return {
        kind: 'sentinel',
        bin,
        args: [conf, '--sentinel', ...(options.args ?? [])],
        env: childEnv(options.env),
        startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
        probe: async () => (await redisCommand({ port }, ['PING'], 1_000)) === 'PONG',
      };
    });
    this.name = name;
  }
}

/** Starts a Redis Sentinel (`redis-server <tmp>/data/sentinel.conf --sentinel`) watching a master. */
export function startSentinel(
  masterPort: number,
  options: SentinelOptions = {},
): Promise<SentinelServer> {
  return createAndStart(1, ([port]) => new ManagedSentinel(port ?? 0, masterPort, options));
}

// ---------------------------------------------------------------------------------------------
// Memcached

class ManagedMemcached extends ManagedServer implements MemcachedServer {
  declare readonly kind: 'memcached';
  readonly servers: string;

  constructor(port: number, options: MemcachedOptions) {
    const bin = requireBinary('memcached', options.bin);
    super('memcached', port, () => ({
      kind: 'memcached',
      bin,
      args: [
        '-l',
        HOST,
        '-p',
        String(port),
        '-U',
        '0',
        '-m',
        String(options.memoryMb ?? 64),
        // memcached refuses to run as root without -u
        ...(isRoot() ? ['-u', 'root'] : []),
        ...(options.args ?? []),
      ],
      env: childEnv(options.env),
      startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
      probe: async () =>
        (
          await tcpExchange(HOST, port, 'version\r\n', (got) => got.includes('\r\n'), 1_000)
        ).startsWith('VERSION '),
    }));
    this.servers = `${HOST}:${port}`;
  }
}

/** Starts `memcached -l 127.0.0.1 -p N -U 0 -m 64` (+ `-u root` when running as root). */
export function startMemcached(options: MemcachedOptions = {}): Promise<MemcachedServer> {
  return createAndStart(1, ([port]) => new ManagedMemcached(port ?? 0, options));
}

// ---------------------------------------------------------------------------------------------
// Etcd

/** Go's GOARCH for the current machine. */
function goArch(): string {
  const map: Record<string, string> = { x64: 'amd64', ia32: '386', arm: 'arm', arm64: 'arm64' };
  return map[process.arch] ?? process.arch;
}

function etcdEnv(extra: Readonly<Record<string, string>> | undefined): NodeJS.ProcessEnv {
  // etcd reads every ETCD_* variable as a flag (e.g. our own ETCD_HOSTS would only warn, but an
  // inherited ETCD_DATA_DIR or ETCD_NAME would change the server): drop them all.
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('ETCD_')) env[key] = value;
  }
  // Upstream etcd 3.4 binaries refuse to start on arches other than amd64/ppc64le unless this is
  // set (the Debian build has the check patched out and only logs a warning about the variable).
  const arch = goArch();
  if (arch !== 'amd64' && arch !== 'ppc64le') env['ETCD_UNSUPPORTED_ARCH'] = arch;
  return { ...env, ...extra };
}

async function etcdHealthy(url: string): Promise<boolean> {
  const response = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) });
  if (!response.ok) return false;
  const body = (await response.json()) as { health?: unknown };
  return body.health === 'true' || body.health === true;
}

class ManagedEtcd extends ManagedServer implements EtcdServer {
  declare readonly kind: 'etcd';
  readonly url: string;

  constructor(
    port: number,
    readonly peerPort: number,
    options: EtcdOptions,
  ) {
    const bin = requireBinary('etcd', options.bin);
    const clientUrl = `http://${HOST}:${port}`;
    const peerUrl = `http://${HOST}:${peerPort}`;
    super('etcd', port, (dataDir) => ({
      kind: 'etcd',
      bin,
      args: [
        '--name',
        'default',
        '--data-dir',
        dataDir,
        '--listen-client-urls',
        clientUrl,
        '--advertise-client-urls',
        clientUrl,
        '--listen-peer-urls',
        peerUrl,
        '--initial-advertise-peer-urls',
        peerUrl,
        '--initial-cluster',
        `default=${peerUrl}`,
        '--initial-cluster-state',
        'new',
        '--logger',
        'zap',
        '--log-outputs',
        'stderr',
        ...(options.args ?? []),
      ],
      env: etcdEnv(options.env),
      startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
      probe: () => etcdHealthy(clientUrl),
    }));
    this.url = clientUrl;
  }
}

/** Starts a single-member etcd with client + peer ports on 127.0.0.1 and a temp data dir. */
export function startEtcd(options: EtcdOptions = {}): Promise<EtcdServer> {
  return createAndStart(
    2,
    ([port, peerPort]) => new ManagedEtcd(port ?? 0, peerPort ?? 0, options),
  );
}

/**
 * Starts one etcd member on the given client and peer ports (for clusters: pass `--name`,
 * `--initial-cluster` and `--initial-cluster-token` in `args`, which override the single-member
 * defaults). Resolves when the member reports healthy (for a cluster member: once there is a
 * leader, so start the members together).
 */
export async function startEtcdMember(
  clientPort: number,
  peerPort: number,
  options: EtcdOptions = {},
): Promise<EtcdServer> {
  const server = new ManagedEtcd(clientPort, peerPort, options);
  try {
    await server.start();
  } catch (error) {
    await server.stop().catch(() => undefined);
    throw error;
  }
  return server;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

export interface PostgresServer extends ServerHandle {
  readonly kind: 'postgres';
  /** `postgres://postgres@127.0.0.1:PORT/postgres`, the format of POSTGRES_URL. */
  readonly url: string;
}

/** Debian keeps PostgreSQL's binaries out of PATH, in /usr/lib/postgresql/<version>/bin. */
function postgresBinary(name: 'postgres' | 'initdb'): string {
  const found = findBinary(name);
  if (found) return found;
  const root = '/usr/lib/postgresql';
  let versions: string[] = [];
  try {
    versions = readdirSync(root).sort((a, b) => Number(b) - Number(a));
  } catch {
    // not installed
  }
  for (const version of versions) {
    const candidate = join(root, version, 'bin', name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not this version
    }
  }
  throw new Error(
    `${name} not found (looked in PATH and ${root}/*/bin). Install it with ` +
      '`node scripts/ensure-servers.mjs` as root (apt-get install postgresql), or set ' +
      'POSTGRES_URL to use an existing server.',
  );
}

/** The unprivileged user PostgreSQL runs as when the tests run as root (it refuses root). */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (!isRoot()) return undefined;
  const id = (flag: string) => {
    const result = spawnSync('id', [flag, 'nobody'], { encoding: 'utf8' });
    const value = Number(result.stdout.trim());
    if (result.status !== 0 || !Number.isInteger(value)) {
      throw new Error(`cannot run PostgreSQL as root, and there is no user 'nobody' (id ${flag})`);
    }
    return value;
  };
  return { uid: id('-u'), gid: id('-g') };
}

class ManagedPostgres extends ManagedServer implements PostgresServer {
  declare readonly kind: 'postgres';
  readonly url: string;

  constructor(port: number, options: CommonServerOptions) {
    const bin = options.bin ?? postgresBinary('postgres');
    const user = postgresUser();
    const url = `postgres://postgres@${HOST}:${port}/postgres`;
    super('postgres', port, (dataDir) => ({
      kind: 'postgres',
      bin,
      args: [
        '-D',
        dataDir,
        '-p',
        String(port),
        '-h',
        HOST,
        '-k',
        join(dataDir, '..', 'socket'),
        '-c',
        'fsync=off',
        '-c',
        'full_page_writes=off',
        '-c',
        'max_connections=300',
        ...(options.args ?? []),
      ],
      env: childEnv(options.env),
      startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
      probe: () => postgresReady(url),
      ...(user ? { user } : {}),
    }));
    this.url = url;
    // The data directory is made once, by initdb, as the user the server runs as.
    const socketDir = join(this.dir, 'socket');
    mkdirSync(socketDir, { mode: 0o700 });
    if (user)
      for (const dir of [this.dir, this.dataDir, socketDir]) chownSync(dir, user.uid, user.gid);
    const initdb = spawnSync(
      postgresBinary('initdb'),
      ['-D', this.dataDir, '-U', 'postgres', '--auth=trust', '-N', '-E', 'UTF8', '--locale=C'],
      { encoding: 'utf8', ...(user ?? {}) },
    );
    if (initdb.status !== 0) {
      throw new Error(`initdb failed (exit ${initdb.status}):\n${initdb.stdout}\n${initdb.stderr}`);
    }
  }
}

/** Whether PostgreSQL at `url` accepts a connection and answers a query. */
async function postgresReady(url: string): Promise<boolean> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * Starts PostgreSQL: `initdb` in a temporary directory (user postgres, trust authentication),
 * then `postgres -p N -h 127.0.0.1 -k <tmp>/socket` with fsync off (a killed server keeps what
 * it committed; a crashed machine would not); as the user nobody when the
 * tests run as root.
 */
export function startPostgres(options: CommonServerOptions = {}): Promise<PostgresServer> {
  return createAndStart(1, ([port]) => new ManagedPostgres(port ?? 0, options));
}

// ---------------------------------------------------------------------------------------------
// ZooKeeper

export interface ZooKeeperServer extends ServerHandle {
  readonly kind: 'zookeeper';
  /** `127.0.0.1:PORT`, the format of ZOOKEEPER_SERVERS (a connect string). */
  readonly servers: string;
}

/** The jars of Debian's zookeeper package (its server and what it needs at run time). */
const ZOOKEEPER_JARS = [
  'zookeeper.jar',
  'zookeeper-jute.jar',
  'netty-all.jar',
  'slf4j-api.jar',
  'slf4j-nop.jar',
  'metrics-core.jar',
  'commons-cli.jar',
  'commons-io.jar',
  'snappy-java.jar',
];

function zookeeperClasspath(): string {
  const dir = '/usr/share/java';
  const missing = ZOOKEEPER_JARS.filter((jar) => {
    try {
      accessSync(join(dir, jar), fsConstants.R_OK);
      return false;
    } catch {
      return true;
    }
  });
  if (missing.includes('zookeeper.jar')) {
    throw new Error(
      `ZooKeeper not found (${dir}/zookeeper.jar). Install it with \`node scripts/ensure-servers.mjs\` ` +
        'as root (apt-get install zookeeper default-jre-headless), or set ZOOKEEPER_SERVERS to use an existing server.',
    );
  }
  return ZOOKEEPER_JARS.filter((jar) => !missing.includes(jar))
    .map((jar) => join(dir, jar))
    .join(':');
}

/** Whether ZooKeeper on `port` answers the four-letter word `ruok` with `imok`. */
async function zookeeperReady(port: number): Promise<boolean> {
  return (await tcpExchange(HOST, port, 'ruok', (got) => got.includes('imok'), 1_000)) === 'imok';
}

class ManagedZooKeeper extends ManagedServer implements ZooKeeperServer {
  declare readonly kind: 'zookeeper';
  readonly servers: string;

  constructor(port: number, options: CommonServerOptions) {
    const bin = requireBinary('zookeeper', options.bin);
    const classpath = zookeeperClasspath();
    super('zookeeper', port, (dataDir) => {
      // tickTime 500: sessions may be as short as 1 s (2 ticks) and as long as 60 s.
      const config = join(dataDir, '..', 'zoo.cfg');
      writeFileSync(
        config,
        [
          'tickTime=500',
          `dataDir=${dataDir}`,
          `clientPort=${port}`,
          `clientPortAddress=${HOST}`,
          'minSessionTimeout=1000',
          'maxSessionTimeout=60000',
          'admin.enableServer=false',
          '4lw.commands.whitelist=*',
          'forceSync=no',
          ...(options.args ?? []),
        ].join('\n') + '\n',
      );
      return {
        kind: 'zookeeper',
        bin,
        args: [
          '-Xms64m',
          '-Xmx256m',
          '-XX:+UseSerialGC',
          '-XX:TieredStopAtLevel=1',
          '-Xshare:auto',
          '-cp',
          classpath,
          'org.apache.zookeeper.server.quorum.QuorumPeerMain',
          config,
        ],
        env: childEnv(options.env),
        startTimeoutMs: options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS,
        probe: () => zookeeperReady(port),
      };
    });
    this.servers = `${HOST}:${port}`;
  }
}

/**
 * Starts a standalone ZooKeeper (Debian's jars, `java ... QuorumPeerMain zoo.cfg`) on 127.0.0.1
 * with a temporary data dir: tickTime 500 ms (sessions of 1 to 60 s), the admin server off, the
 * four-letter words on (`ruok` is the readiness probe), `forceSync=no`. `args` are extra zoo.cfg
 * lines. A restart keeps the data dir: sessions survive a restart shorter than their timeout.
 */
export function startZooKeeper(options: CommonServerOptions = {}): Promise<ZooKeeperServer> {
  return createAndStart(1, ([port]) => new ManagedZooKeeper(port ?? 0, options));
}
