import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from '../../core/errors.js';
import { compileServerOptions, describeServer, parseServerUrl, redactUrl } from './server-metadata-store.js';
import type { UrlScheme } from './server-metadata-store.js';

const postgres: UrlScheme = { backend: 'PostgreSQL', protocols: ['postgres:', 'postgresql:'], defaultPort: 5432 };

describe('server metadata store URLs', () => {
  it('parses host, port and database, defaulting the port', () => {
    assert.deepEqual(parseServerUrl('postgres://u:p@db.internal:6543/meta', postgres), {
      backend: 'PostgreSQL',
      host: 'db.internal',
      port: 6543,
      database: 'meta',
    });
    const address = parseServerUrl('postgresql://db.internal/my%20db', postgres);
    assert.equal(address.port, 5432);
    assert.equal(address.database, 'my db');
    assert.equal(describeServer(address), 'PostgreSQL at db.internal:5432');
  });

  it('takes a socket directory from ?host= when the URL has no host', () => {
    const address = parseServerUrl('postgres:///meta?host=/run/postgresql', postgres);
    assert.equal(describeServer(address), 'PostgreSQL at /run/postgresql:5432');
  });

  it('rejects other schemes and garbage with BAD_REQUEST, never echoing the password', () => {
    for (const url of ['mysql://u:s3cret-pw@h/db', 'not a url s3cret-pw', 'http://u:s3cret-pw@h:1/db']) {
      assert.throws(
        () => parseServerUrl(url, postgres),
        (err: unknown) => isPlatformError(err, 'BAD_REQUEST') && !err.message.includes('s3cret-pw'),
        url,
      );
    }
  });

  it('redacts the password only', () => {
    assert.equal(redactUrl('postgres://u:s3cret@h:1/db?sslmode=require'), 'postgres://u:***@h:1/db?sslmode=require');
    assert.equal(redactUrl('postgres://h/db'), 'postgres://h/db');
  });
});

describe('server metadata store options', () => {
  it('defaults to 10 connections, a 2 s connect timeout and no record journal', () => {
    const { logger, ...compiled } = compileServerOptions({});
    assert.deepEqual(compiled, {
      maxInvocationBatch: undefined,
      maxConnections: 10,
      connectTimeoutMs: 2000,
      journalDir: undefined,
    });
    assert.equal(typeof logger.warn, 'function');
  });

  it('rejects nonsense with BAD_REQUEST', () => {
    assert.throws(() => compileServerOptions({ maxConnections: 0 }), /BAD_REQUEST/);
    assert.throws(() => compileServerOptions({ connectTimeoutMs: 1.5 }), /BAD_REQUEST/);
  });
});
