/**
 * TLS passes through to the driver: a Redis server that speaks TLS (certificates made for the
 * test with openssl), reached by ioredis with `tls: { ca }`, directly and through the Nest
 * module's `connection` options. A client without TLS gets a LockBackendError, never a grant.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { LockBackendError, LockService, RedisLock, SherlockModule } from 'nestjs-sherlock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { getFreePort, type RedisServer, startRedis } from '../support/servers.js';

const run = promisify(execFile);

describe('Redis over TLS', () => {
  let dir: string;
  let server: RedisServer;
  let tlsPort: number;
  let ca: Buffer;
  const clients: Redis[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sherlock-tls-'));
    const file = (name: string) => join(dir, name);
    const subject = (cn: string) => ['-subj', `/CN=${cn}`];
    await run('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      file('ca.key'),
      '-out',
      file('ca.crt'),
      '-days',
      '2',
      ...subject('sherlock-test-ca'),
    ]);
    await run('openssl', [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      file('server.key'),
      '-out',
      file('server.csr'),
      ...subject('127.0.0.1'),
    ]);
    writeFileSync(file('ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      file('server.csr'),
      '-CA',
      file('ca.crt'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-out',
      file('server.crt'),
      '-days',
      '2',
      '-extfile',
      file('ext.cnf'),
    ]);
    ca = readFileSync(file('ca.crt'));
    tlsPort = await getFreePort();
    // The plain port stays open for the test harness's readiness probe; clients use the TLS port.
    server = await startRedis({
      args: [
        '--tls-port',
        String(tlsPort),
        '--tls-cert-file',
        file('server.crt'),
        '--tls-key-file',
        file('server.key'),
        '--tls-ca-cert-file',
        file('ca.crt'),
        '--tls-auth-clients',
        'no',
      ],
    });
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('ioredis with tls: { ca } locks, extends and releases; without TLS it is a LockBackendError', async () => {
    const secure = new Redis({
      host: '127.0.0.1',
      port: tlsPort,
      tls: { ca },
      maxRetriesPerRequest: 1,
    });
    clients.push(secure);
    const lock = new RedisLock(uniqueName('tls'), { client: secure, expire: 10_000 });
    expect(await lock.acquire(false)).toBe(true);
    await lock.extend();
    expect(await lock.locked()).toBe(true);
    await lock.release();

    const plain = new Redis({ host: '127.0.0.1', port: tlsPort, maxRetriesPerRequest: 1 });
    plain.on('error', () => undefined);
    clients.push(plain);
    const denied = new RedisLock(uniqueName('tls'), { client: plain, operationTimeout: 1_000 });
    await expect(denied.acquire(false)).rejects.toBeInstanceOf(LockBackendError);
    expect(denied.isAcquired).toBe(false);
  });

  it('the Nest module passes TLS connection options through', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        SherlockModule.forRoot({
          backend: 'redis',
          connection: { host: '127.0.0.1', port: tlsPort, tls: { ca } },
        }),
      ],
    }).compile();
    const app = moduleRef.createNestApplication();
    await app.init();
    try {
      const token = await app
        .get(LockService)
        .run(uniqueName('nest-tls'), (lock) => lock.fencingToken);
      expect(token).toMatch(/^\d+$/);
    } finally {
      await app.close();
    }
  });
});
