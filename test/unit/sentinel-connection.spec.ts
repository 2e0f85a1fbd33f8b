/**
 * The Redis backend's Sentinel settings (docs/sentinel.md): the `redis+sentinel://` URL and the
 * `sentinels` + `name` options taken apart into ioredis options, `waitForReplicas` taken out, and
 * bad input refused with a typed error naming the option and the value. No server: parsing only.
 */
import { describe, expect, it } from 'vitest';

import {
  checkWaitForReplicas,
  parseRedisOptions,
  parseSentinelUrl,
} from '../../lib/backends/redis/sentinel.js';

describe('redis+sentinel:// URLs', () => {
  it('Sentinels, master name, credentials, db and the WAIT parameters', () => {
    const parsed = parseSentinelUrl(
      'redis+sentinel://app:s%40cret@10.0.0.1:26379,[::1]:26380,s3:26381/mymaster/2?sentinelPassword=sp&sentinelUsername=su&waitForReplicas=1&waitTimeout=250',
    );
    expect(parsed.options).toEqual({
      username: 'app',
      password: 's@cret',
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: '::1', port: 26380 },
        { host: 's3', port: 26381 },
      ],
      name: 'mymaster',
      db: 2,
      sentinelUsername: 'su',
      sentinelPassword: 'sp',
    });
    expect(parsed.waitForReplicas).toEqual({ replicas: 1, timeout: 250 });
    const plain = parseSentinelUrl('REDIS+SENTINEL://127.0.0.1:26379/m?waitForReplicas=2');
    expect(plain.options).toEqual({ sentinels: [{ host: '127.0.0.1', port: 26379 }], name: 'm' });
    expect(plain.waitForReplicas, 'waitTimeout defaults to 100 ms').toEqual({
      replicas: 2,
      timeout: 100,
    });
  });

  it.each([
    ['redis+sentinel://127.0.0.1:26379', /master name is missing/],
    ['redis+sentinel://127.0.0.1/mymaster', /every Sentinel must be host:port/],
    ['redis+sentinel://127.0.0.1:99999/mymaster', /every Sentinel must be host:port/],
    ['redis+sentinel://a:1,/mymaster', /every Sentinel must be host:port/],
    ['redis+sentinel://a:1/mymaster/x', /database must be a number/],
    ['redis+sentinel://a:1/mymaster/0/more', /too many path segments/],
    ['redis+sentinel://a:1/mymaster?sentinelPasword=x', /Unknown option 'sentinelPasword'/],
    ['redis+sentinel://a:1/mymaster?role=slave', /connection\.role.*"slave".*'master'/],
    ['redis+sentinel://a:1/mymaster?waitForReplicas=0', /waitForReplicas.*replicas.*0/],
    ['redis+sentinel://a:1/mymaster?waitForReplicas=one', /replicas.*NaN/],
    ['redis+sentinel://a:1/mymaster?waitTimeout=5', /waitTimeout needs waitForReplicas/],
  ])('%s is refused: %s', (url, message) => {
    expect(() => parseSentinelUrl(url)).toThrow(message);
    expect(() => parseSentinelUrl(url)).toThrow(/Invalid option|Unknown option/);
  });
});

describe('Sentinel options', () => {
  it('valid options pass to ioredis unchanged, "host:port" strings become addresses, waitForReplicas is taken out', () => {
    const { options, waitForReplicas } = parseRedisOptions({
      sentinels: [{ host: 'a', port: 1 }, 'b:2'],
      name: 'mymaster',
      role: 'master',
      sentinelPassword: 'x',
      enableTLSForSentinelMode: false,
      waitForReplicas: { replicas: 1, timeout: 50 },
    });
    expect(options).toEqual({
      sentinels: [
        { host: 'a', port: 1 },
        { host: 'b', port: 2 },
      ],
      name: 'mymaster',
      role: 'master',
      sentinelPassword: 'x',
      enableTLSForSentinelMode: false,
    });
    expect(waitForReplicas).toEqual({ replicas: 1, timeout: 50 });
    // Not Sentinel: untouched (waitForReplicas applies to a plain master too).
    expect(parseRedisOptions({ host: 'h', port: 1 })).toEqual({
      options: { host: 'h', port: 1 },
      waitForReplicas: undefined,
    });
  });

  it.each([
    [{ sentinels: [], name: 'm' }, TypeError, /'connection\.sentinels'.*non-empty array/],
    [{ sentinels: 'a:1', name: 'm' }, TypeError, /'connection\.sentinels'/],
    [{ sentinels: [{ host: 'a' }], name: 'm' }, TypeError, /'connection\.sentinels\[0\]'/],
    [{ sentinels: [{ host: 'a', port: 0 }], name: 'm' }, TypeError, /sentinels\[0\].*1-65535/],
    [{ sentinels: ['a:1'] }, TypeError, /'connection\.name'.*undefined.*mymaster/],
    [{ sentinels: ['a:1'], name: ' ' }, TypeError, /'connection\.name'/],
    [{ sentinels: ['a:1'], name: 'm', role: 'slave' }, TypeError, /'connection\.role'/],
    [{ sentinels: ['a:1'], name: 'm', sentinelPassword: 1 }, TypeError, /sentinelPassword/],
    [{ waitForReplicas: 1 }, TypeError, /'connection\.waitForReplicas'.*got 1/],
    [{ waitForReplicas: { replicas: 1 } }, TypeError, /waitForReplicas\.timeout.*undefined/],
    [{ waitForReplicas: { replicas: 1.5, timeout: 1 } }, RangeError, /replicas.*1\.5/],
    [{ waitForReplicas: { replicas: 1, timeout: 0 } }, RangeError, /timeout.*got 0/],
    [{ waitForReplicas: { replicas: 1, timeout: 9, count: 1 } }, TypeError, /'count'/],
  ])('%j is refused', (connection, type, message) => {
    expect(() => parseRedisOptions(connection)).toThrow(type);
    expect(() => parseRedisOptions(connection)).toThrow(message);
  });

  it('checkWaitForReplicas names the option it checks', () => {
    expect(() => checkWaitForReplicas(null)).toThrow(/Invalid option 'waitForReplicas': got null/);
  });
});
