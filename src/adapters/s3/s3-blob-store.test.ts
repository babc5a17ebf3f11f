import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from '../../core/errors.js';
import { S3BlobStore, s3BlobStoreConfigFromUrl } from './s3-blob-store.js';

describe('s3BlobStoreConfigFromUrl', () => {
  it('reads an s3: URL with credentials, region, tls and a key prefix', () => {
    const config = s3BlobStoreConfigFromUrl(
      's3://AKIA1234:se%2Fcr%2Bet@minio.internal:9000/blobs/tenant-a/v1?region=eu-west-1&tls=false',
    );
    assert.deepEqual(config, {
      endpoint: 'http://minio.internal:9000',
      region: 'eu-west-1',
      bucket: 'blobs',
      keyPrefix: 'tenant-a/v1/',
      credentials: { accessKeyId: 'AKIA1234', secretAccessKey: 'se/cr+et' },
      createBucket: false,
      listPageSize: 1000,
      timeoutMs: 2000,
      maxAttempts: 2,
    });
  });

  it('defaults to TLS and us-east-1, and to the SDK credential chain without userinfo', () => {
    const config = s3BlobStoreConfigFromUrl('s3://s3.amazonaws.com/my.bucket/');
    assert.equal(config.endpoint, 'https://s3.amazonaws.com');
    assert.equal(config.region, 'us-east-1');
    assert.equal(config.bucket, 'my.bucket');
    assert.equal(config.keyPrefix, '');
    assert.equal(config.credentials, undefined);
  });

  it('takes http: and https: URLs, where the scheme says TLS', () => {
    assert.equal(s3BlobStoreConfigFromUrl('http://k:s@127.0.0.1:4568/bucket').endpoint, 'http://127.0.0.1:4568');
    assert.equal(s3BlobStoreConfigFromUrl('https://k:s@[::1]:4568/bucket').endpoint, 'https://[::1]:4568');
    assert.equal(s3BlobStoreConfigFromUrl('s3://k:s@host/bucket?tls=true').endpoint, 'https://host');
  });

  it('takes createBucket from the URL, and options over the URL', () => {
    assert.equal(s3BlobStoreConfigFromUrl('s3://h/bucket?createBucket=true').createBucket, true);
    assert.equal(
      s3BlobStoreConfigFromUrl('s3://h/bucket?createBucket=true', { createBucket: false }).createBucket,
      false,
    );
    const tuned = s3BlobStoreConfigFromUrl('s3://h/bucket', { listPageSize: 5, timeoutMs: 300, maxAttempts: 1 });
    assert.deepEqual([tuned.listPageSize, tuned.timeoutMs, tuned.maxAttempts], [5, 300, 1]);
  });

  it('rejects malformed URLs and options with BAD_REQUEST, never repeating the secret', () => {
    const secret = 'TOP-SECRET-VALUE';
    const bad: [string, RegExp][] = [
      [`s3://key:${secret}@host`, /bucket "" must be/],
      [`s3://key:${secret}@host/Upper_Case`, /bucket "Upper_Case"/],
      [`s3://key:${secret}@host/ab`, /bucket "ab"/],
      [`ftp://key:${secret}@host/bucket`, /scheme ftp:/],
      [`http://key:${secret}@host/bucket?tls=false`, /tls is only for s3:/],
      [`s3://key:${secret}@host/bucket?tls=maybe`, /tls must be true or false/],
      [`s3://key:${secret}@host/bucket?regoin=eu-west-1`, /unknown parameter "regoin"/],
      [`s3://key@host/bucket`, /both access key and secret/],
      [`s3://key:${secret}@host/bucket/a b`, /key prefix segment/],
      [`s3://key:${secret}@host/bucket/a//b`, /key prefix segment ""/],
      [`s3://key:%E0%A4%A@host/bucket`, /percent-encoding/],
      [`s3:///bucket`, /no host/],
      [`not a url ${secret}`, /does not parse/],
    ];
    for (const [url, why] of bad) {
      assert.throws(
        () => s3BlobStoreConfigFromUrl(url),
        (err: unknown) => {
          assert.ok(isPlatformError(err, 'BAD_REQUEST'), `${url}: ${String(err)}`);
          assert.match(err.message, why, url);
          assert.ok(!err.message.includes(secret), `${url}: the message repeats the secret`);
          return true;
        },
      );
    }
    for (const options of [{ listPageSize: 0 }, { listPageSize: 1001 }, { timeoutMs: 1.5 }, { maxAttempts: 0 }]) {
      assert.throws(() => s3BlobStoreConfigFromUrl('s3://h/bucket', options), /BAD_REQUEST/);
    }
  });
});

describe('S3BlobStore without a server', () => {
  it('does no I/O in the constructor, shows no secret, and checks keys before any request', async () => {
    const store = new S3BlobStore(s3BlobStoreConfigFromUrl('http://key:TOP-SECRET@127.0.0.1:9/bucket/pre'));
    try {
      assert.equal(store.endpoint, 'http://127.0.0.1:9');
      assert.equal(store.keyPrefix, 'pre/');
      assert.ok(!JSON.stringify(store).includes('TOP-SECRET'));
      await assert.rejects(store.put('../escape', 'x'), /BAD_REQUEST/);
      await assert.rejects(store.list('/abs'), /BAD_REQUEST/);
    } finally {
      await store.close();
    }
    await store.close();
    await assert.rejects(store.get('a'), /UNAVAILABLE.*closed/);
  });
});
