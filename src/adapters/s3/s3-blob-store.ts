import { createHash } from 'node:crypto';
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import type { BucketLocationConstraint, GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { isValidBlobKey, isValidBlobKeySegment, parseBlobPrefix, validateBlobKey } from '../../core/blob-keys.js';
import { Readable } from 'node:stream';
import { ExactLength } from '../../core/stream-length.js';
import { PlatformError } from '../../core/errors.js';
import type { BlobStore } from '../../core/ports/blob-store.js';

/** Tuning for `openS3BlobStore`; every field has a default. */
export interface S3BlobStoreOptions {
  /** Create the bucket when it does not exist (default false: a missing bucket fails the open). */
  createBucket?: boolean;
  /** Keys asked for per ListObjects page, 1–1000 (default 1000). Small values are for tests. */
  listPageSize?: number;
  /** Connect timeout and socket idle timeout per attempt, in ms (default 2000). */
  timeoutMs?: number;
  /** Attempts per request, retries included, 1–10 (default 2). */
  maxAttempts?: number;
}

/** Everything an `S3BlobStore` needs, validated and defaulted: what `s3BlobStoreConfigFromUrl` returns. */
export interface S3BlobStoreConfig {
  /** `http(s)://host[:port]`, never with credentials: safe to show in messages. */
  endpoint: string;
  region: string;
  bucket: string;
  /** Put in front of every key: `''` or segments ending in `/` (`tenant-a/`). */
  keyPrefix: string;
  /** Absent: the AWS SDK's default chain (environment variables, shared config, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  createBucket: boolean;
  listPageSize: number;
  timeoutMs: number;
  maxAttempts: number;
}

const defaultRegion = 'us-east-1';
/** S3's bucket naming rules, without the rarely relevant exceptions (`xn--` prefixes and the like). */
const bucketPattern = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const urlParams = new Set(['region', 'tls', 'createBucket']);

/**
 * A `BlobStore` on an S3-compatible object store (AWS S3, MinIO, Ceph RGW, s3rver…), one bucket, path-style
 * requests. Key `a/b/c` is the object `{keyPrefix}a/b/c`. Keys are checked exactly as for `FsBlobStore`
 * (`validateBlobKey`): anything else is BAD_REQUEST before a request is made.
 *
 * A put replaces the object whole (S3's own atomicity). `exists` is a HeadObject, `get` a GetObject (null on
 * 404), `list` pages through ListObjects and sorts. A failure of the backend, unreachable or answering with an
 * error, is UNAVAILABLE naming "S3 at <endpoint>", never the credentials; requests time out after `timeoutMs`
 * without progress and are tried `maxAttempts` times, so an outage fails fast.
 *
 * Checksums are sent and checked only when S3 requires them (`WHEN_REQUIRED`): with the SDK's default, a streamed
 * PUT to s3rver kept the chunk framing inside the object. Puts carry a Content-MD5 so S3 rejects a damaged body.
 *
 * Prefer `openS3BlobStore(url)`, which also checks (or creates) the bucket; the constructor does no I/O.
 */
export class S3BlobStore implements BlobStore {
  /** `http(s)://host[:port]`, no credentials. */
  readonly endpoint: string;
  readonly bucket: string;
  /** `''` or segments ending in `/`, put in front of every key. */
  readonly keyPrefix: string;
  // Private: it holds the secret, which must not end up in a log line that prints the store.
  readonly #config: S3BlobStoreConfig;
  readonly #client: S3Client;
  #closed = false;

  constructor(config: S3BlobStoreConfig) {
    this.endpoint = config.endpoint;
    this.bucket = config.bucket;
    this.keyPrefix = config.keyPrefix;
    this.#config = config;
    this.#client = createS3Client(config);
  }

  /** Check that the bucket is there and answers; create it when `config.createBucket` says so. */
  async ensureBucket(): Promise<void> {
    this.#assertOpen('check the bucket');
    const { bucket, createBucket } = this.#config;
    const found = await this.#call(
      `check bucket ${bucket}`,
      async () => {
        await this.#client.send(new HeadBucketCommand({ Bucket: bucket }));
        return true;
      },
      (err) => (isNotFound(err) ? false : undefined),
    );
    if (found) return;
    if (!createBucket) {
      throw new PlatformError(
        'UNAVAILABLE',
        `bucket ${bucket} does not exist at S3 at ${this.endpoint}: create it, or open the store with createBucket`,
      );
    }
    await this.#createBucket();
  }

  async put(key: string, data: Uint8Array | string): Promise<void> {
    this.#assertOpen('write');
    const objectKey = this.#objectKey(key);
    const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key: objectKey,
      Body: body,
      ContentLength: body.byteLength,
      ContentMD5: createHash('md5').update(body).digest('base64'),
      ContentType: 'application/octet-stream',
    });
    await this.#call(`write blob ${key}`, () => this.#client.send(command));
  }

  /** A streamed PUT with its length declared up front (no chunked encoding, which s3rver would store). */
  async putStream(key: string, body: Readable, length: number): Promise<void> {
    this.#assertOpen('write');
    const objectKey = this.#objectKey(key);
    const checked = new ExactLength(length, `cannot store blob ${key}`);
    let streamError: unknown = null;
    body.once('error', (err) => checked.destroy(err));
    checked.once('error', (err) => (streamError = err));
    const command = new PutObjectCommand({
      Bucket: this.bucket,
      Key: objectKey,
      Body: body.pipe(checked),
      ContentLength: length,
      ContentType: 'application/octet-stream',
    });
    try {
      await this.#call(`write blob ${key}`, () => this.#client.send(command));
    } catch (err) {
      // A misdeclared length is the caller's fault, whatever the request failed with.
      if (streamError instanceof PlatformError) throw streamError;
      throw err;
    }
    if (streamError instanceof PlatformError) throw streamError;
  }

  get(key: string): Promise<Buffer | null> {
    return this.#getObject(key, async (body) => {
      const bytes = (await body?.transformToByteArray()) ?? new Uint8Array(0);
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    });
  }

  getStream(key: string): Promise<Readable | null> {
    // In Node the SDK's body is the HTTP response itself: a Readable.
    return this.#getObject(key, (body) => Promise.resolve(body instanceof Readable ? body : Readable.from([])));
  }

  /** GET an object and hand its body to `read`; null when there is no such object. */
  async #getObject<T>(key: string, read: (body: GetObjectCommandOutput['Body']) => Promise<T>): Promise<T | null> {
    this.#assertOpen('read');
    const command = new GetObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key) });
    return this.#call<T | null>(
      `read blob ${key}`,
      async () => read((await this.#client.send(command)).Body),
      (err) => (isMissingObject(err) ? null : undefined),
    );
  }

  async exists(key: string): Promise<boolean> {
    this.#assertOpen('read');
    const command = new HeadObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key) });
    return this.#call(
      `check blob ${key}`,
      async () => {
        await this.#client.send(command);
        return true;
      },
      // A HEAD answer has no body, so a missing bucket is a plain 404 too: openS3BlobStore checked the bucket.
      (err) => (isNotFound(err) ? false : undefined),
    );
  }

  async delete(key: string): Promise<void> {
    this.#assertOpen('delete');
    const command = new DeleteObjectCommand({ Bucket: this.bucket, Key: this.#objectKey(key) });
    // S3 answers 204 whether or not the key was there.
    await this.#call(`delete blob ${key}`, () => this.#client.send(command));
  }

  async list(prefix: string): Promise<string[]> {
    this.#assertOpen('list');
    parseBlobPrefix(prefix);
    const { keyPrefix } = this;
    const keys: string[] = [];
    let marker: string | undefined;
    do {
      const objectKeys = await this.#listPage(prefix, marker);
      for (const objectKey of objectKeys.keys) {
        const key = objectKey.slice(keyPrefix.length);
        // Objects written by others under the same prefix may not be valid keys: skip them, as FsBlobStore does.
        if (isValidBlobKey(key)) keys.push(key);
      }
      marker = objectKeys.truncated ? objectKeys.keys.at(-1) : undefined;
    } while (marker !== undefined);
    return keys.sort();
  }

  /** Destroy the client and its sockets. Idempotent; any later call is UNAVAILABLE. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#client.destroy();
    }
    return Promise.resolve();
  }

  /**
   * One page of object keys (with the key prefix) after `marker`, sorted, as S3 lists them. This is ListObjects
   * (version 1) with Marker, the last key seen: every S3 implementation has it and lists the same keys as
   * ListObjectsV2 with StartAfter. V2 is not used because s3rver makes its continuation tokens, even those of a
   * first page, with DES, which OpenSSL 3 (Node ≥ 17) refuses: every truncated V2 page was a 500.
   */
  async #listPage(prefix: string, marker: string | undefined): Promise<{ keys: string[]; truncated: boolean }> {
    const action = `list blobs under ${JSON.stringify(prefix)}`;
    const command = new ListObjectsCommand({
      Bucket: this.bucket,
      Prefix: this.keyPrefix + prefix,
      MaxKeys: this.#config.listPageSize,
      Marker: marker,
    });
    const page = await this.#call(action, () => this.#client.send(command));
    const keys = (page.Contents ?? []).flatMap((object) => (object.Key === undefined ? [] : [object.Key]));
    const truncated = page.IsTruncated === true;
    const last = keys.at(-1);
    // A truncated page must move forward, or the next request would ask for the same page again.
    if (truncated && (last === undefined || (marker !== undefined && last <= marker))) {
      throw new PlatformError(
        'UNAVAILABLE',
        `cannot ${action}: ${this.#where()} sent a truncated page that does not advance`,
      );
    }
    return { keys, truncated };
  }

  async #createBucket(): Promise<void> {
    const { bucket, region } = this.#config;
    // us-east-1 is the default location and must not be named (S3 answers InvalidLocationConstraint).
    // The SDK's union of region names lags behind AWS; S3 itself checks the name.
    const configuration =
      region === defaultRegion ? undefined : { LocationConstraint: region as BucketLocationConstraint };
    const command = new CreateBucketCommand({ Bucket: bucket, CreateBucketConfiguration: configuration });
    const created = await this.#call(
      `create bucket ${bucket}`,
      async () => {
        await this.#client.send(command);
        return true;
      },
      // Another process created it between our HEAD and this PUT (some servers, s3rver among them, answer
      // BucketAlreadyExists even to its owner: then it is ours if we can reach it).
      (err) => {
        const name = errorName(err);
        if (name === 'BucketAlreadyOwnedByYou') return true;
        return name === 'BucketAlreadyExists' ? false : undefined;
      },
    );
    if (created) return;
    await this.#call(`check bucket ${bucket}`, async () => {
      await this.#client.send(new HeadBucketCommand({ Bucket: bucket }));
      return true;
    });
  }

  /**
   * Run one request, turning its failure into a PlatformError. `recover` may map an expected failure (a 404) to a
   * result; it returns undefined for the others. Keys are checked before, so a BAD_REQUEST never lands here.
   */
  async #call<T>(action: string, request: () => Promise<T>, recover?: (err: unknown) => T | undefined): Promise<T> {
    try {
      return await request();
    } catch (err) {
      const recovered = recover?.(err);
      if (recovered !== undefined) return recovered;
      throw this.#failure(action, err);
    }
  }

  #failure(action: string, err: unknown): PlatformError {
    if (this.#closed) return closedError(action);
    if (errorName(err) === 'KeyTooLongError') {
      return new PlatformError('BAD_REQUEST', `cannot ${action}: ${this.#where()} says the key is too long`, {
        cause: err,
      });
    }
    return new PlatformError('UNAVAILABLE', `cannot ${action}: ${describeFailure(this.#where(), err)}`, {
      cause: err,
    });
  }

  #where(): string {
    return `S3 at ${this.endpoint} (bucket ${this.bucket})`;
  }

  #objectKey(key: string): string {
    return this.keyPrefix + validateBlobKey(key);
  }

  #assertOpen(action: string): void {
    if (this.#closed) throw closedError(action);
  }
}

/**
 * Open a `BlobStore` on S3 from a URL, and check that its bucket answers (creating it if asked).
 *
 * URL forms:
 * - `s3://ACCESS_KEY:SECRET@host[:port]/bucket[/key/prefix]?region=us-east-1&tls=false` — HTTPS unless
 *   `tls=false`.
 * - `http://ACCESS_KEY:SECRET@host[:port]/bucket[/key/prefix]` or `https://…` — the scheme says TLS or not
 *   (`tls` is not allowed there).
 *
 * Access key and secret are percent-encoded (a secret's `/` is `%2F`, `+` is `%2B`); leave both out to use the
 * AWS SDK's default credential chain. Path segments after the bucket become a key prefix, so several stores can
 * share a bucket. Query parameters: `region` (default `us-east-1`), `tls` (`true`/`false`, `s3:` only),
 * `createBucket` (`true`/`false`, overridden by `options.createBucket`). Anything else is BAD_REQUEST.
 *
 * @example
 * const blobs = await openS3BlobStore('s3://minio:minio-secret@127.0.0.1:9000/savassan?tls=false', {
 *   createBucket: true,
 * });
 * await blobs.put(`code/${sha256}.zip`, zip);
 *
 * @example
 * // AWS S3, credentials from the environment, keys under `prod/` in bucket `acme-blobs`:
 * await openS3BlobStore('s3://s3.eu-west-1.amazonaws.com/acme-blobs/prod?region=eu-west-1');
 */
export async function openS3BlobStore(url: string, options: S3BlobStoreOptions = {}): Promise<S3BlobStore> {
  const store = new S3BlobStore(s3BlobStoreConfigFromUrl(url, options));
  try {
    await store.ensureBucket();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

/** Parse and check an S3 URL (see `openS3BlobStore`) and options into a config. Throws BAD_REQUEST. */
export function s3BlobStoreConfigFromUrl(url: string, options: S3BlobStoreOptions = {}): S3BlobStoreConfig {
  const parsed = parseUrl(url);
  const tls = tlsOf(parsed);
  if (parsed.hostname === '') throw new PlatformError('BAD_REQUEST', 'invalid S3 URL: no host');
  const [bucket = '', ...prefixSegments] = parsed.pathname.split('/').slice(1);
  checkBucket(bucket);
  checkParams(parsed.searchParams);
  return {
    endpoint: `${tls ? 'https' : 'http'}://${parsed.host}`,
    region: parsed.searchParams.get('region') || defaultRegion,
    bucket,
    keyPrefix: keyPrefixOf(prefixSegments),
    credentials: credentialsOf(parsed),
    createBucket: options.createBucket ?? booleanParam(parsed.searchParams, 'createBucket') ?? false,
    listPageSize: integerOption('listPageSize', options.listPageSize, 1000, 1, 1000),
    timeoutMs: integerOption('timeoutMs', options.timeoutMs, 2000, 1, 600_000),
    maxAttempts: integerOption('maxAttempts', options.maxAttempts, 2, 1, 10),
  };
}

function createS3Client(config: S3BlobStoreConfig): S3Client {
  return new S3Client({
    endpoint: config.endpoint,
    region: config.region,
    credentials: config.credentials,
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: config.maxAttempts,
    // socketTimeout is an idle timeout, so big objects that keep moving are not cut off.
    requestHandler: { connectionTimeout: config.timeoutMs, socketTimeout: config.timeoutMs },
  });
}

function parseUrl(url: string): URL {
  try {
    return new URL(url);
  } catch {
    // The URL may hold a secret: neither the message nor a cause (Node's error keeps the input) repeats it.
    throw new PlatformError('BAD_REQUEST', 'invalid S3 URL: it does not parse as a URL');
  }
}

function tlsOf(url: URL): boolean {
  const tls = booleanParam(url.searchParams, 'tls');
  if (url.protocol === 's3:') return tls ?? true;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new PlatformError('BAD_REQUEST', `invalid S3 URL: scheme ${url.protocol} is not s3:, http: or https:`);
  }
  if (tls !== undefined) {
    throw new PlatformError('BAD_REQUEST', `invalid S3 URL: tls is only for s3: URLs, ${url.protocol} already says`);
  }
  return url.protocol === 'https:';
}

function checkBucket(bucket: string): void {
  if (!bucketPattern.test(bucket)) {
    throw new PlatformError(
      'BAD_REQUEST',
      `invalid S3 URL: bucket ${JSON.stringify(bucket)} must be 3–63 characters of a-z, 0-9, . and -, ` +
        'given as the first path segment',
    );
  }
}

function checkParams(params: URLSearchParams): void {
  for (const name of params.keys()) {
    if (!urlParams.has(name)) {
      throw new PlatformError(
        'BAD_REQUEST',
        `invalid S3 URL: unknown parameter ${JSON.stringify(name)} (known: ${[...urlParams].join(', ')})`,
      );
    }
  }
}

function keyPrefixOf(segments: string[]): string {
  if (segments.at(-1) === '') segments = segments.slice(0, -1); // `/bucket/prefix/` as `/bucket/prefix`
  for (const segment of segments) {
    if (!isValidBlobKeySegment(segment)) {
      throw new PlatformError(
        'BAD_REQUEST',
        `invalid S3 URL: key prefix segment ${JSON.stringify(segment)} may only use letters, digits and ._@=-`,
      );
    }
  }
  return segments.map((segment) => `${segment}/`).join('');
}

function credentialsOf(url: URL): S3BlobStoreConfig['credentials'] {
  if (url.username === '' && url.password === '') return undefined;
  if (url.username === '' || url.password === '') {
    throw new PlatformError('BAD_REQUEST', 'invalid S3 URL: give both access key and secret (KEY:SECRET@), or neither');
  }
  try {
    return { accessKeyId: decodeURIComponent(url.username), secretAccessKey: decodeURIComponent(url.password) };
  } catch {
    throw new PlatformError('BAD_REQUEST', 'invalid S3 URL: the credentials are not valid percent-encoding');
  }
}

function booleanParam(params: URLSearchParams, name: string): boolean | undefined {
  const value = params.get(name);
  if (value === null) return undefined;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new PlatformError('BAD_REQUEST', `invalid S3 URL: ${name} must be true or false, not ${JSON.stringify(value)}`);
}

function integerOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new PlatformError('BAD_REQUEST', `S3 blob store option ${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** What went wrong, for a message: the server's answer, or why there was none. Never the credentials. */
function describeFailure(where: string, err: unknown): string {
  if (err instanceof S3ServiceException) {
    const status = err.$metadata.httpStatusCode;
    // A HEAD error has no body: the SDK can only say "Unknown".
    const answer = err.name === 'Unknown' ? `${status}` : `${status} ${err.name}: ${err.message}`;
    const hint = status === 401 || status === 403 ? ' (check the access key, the secret and the bucket policy)' : '';
    return `${where} answered ${answer}${hint}`;
  }
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return `${where} is unreachable (${code === undefined ? '' : `${code}: `}${message})`;
}

/** GetObject's "no such key"; a missing bucket (also 404) is not a missing key. */
function isMissingObject(err: unknown): boolean {
  return errorName(err) === 'NoSuchKey' || (isNotFound(err) && errorName(err) !== 'NoSuchBucket');
}

function isNotFound(err: unknown): boolean {
  return err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404;
}

function errorName(err: unknown): string | undefined {
  return err instanceof Error ? err.name : undefined;
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

function closedError(action: string): PlatformError {
  return new PlatformError('UNAVAILABLE', `cannot ${action}: the blob store is closed`);
}
