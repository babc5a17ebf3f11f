import assert from 'node:assert/strict';
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { InvokeCommand, LambdaClient, ListFunctionsCommand } from '@aws-sdk/client-lambda';
import { SignatureV4 } from '@smithy/signature-v4';
import type { SourceData } from '@smithy/types';
import Fastify, { type FastifyInstance, type FastifyPluginCallback } from 'fastify';
import { accessKeysFrom, apiKeyHook, requireApiKeys } from './api-keys.js';
import { sigV4PreHandler, verifySigV4, type SigV4Request } from './sigv4.js';

/** SHA-256 for the AWS SDK's signer, on node:crypto (an HMAC when given a secret). */
class Sha256 {
  private hash: Hash | Hmac;
  private readonly secret: string | Uint8Array | undefined;
  constructor(secret?: SourceData) {
    this.secret = secret === undefined || typeof secret === 'string' ? secret : bytes(secret);
    this.hash = this.fresh();
  }
  private fresh(): Hash | Hmac {
    return this.secret === undefined ? createHash('sha256') : createHmac('sha256', this.secret);
  }
  update(data: SourceData): void {
    this.hash.update(typeof data === 'string' ? data : bytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.hash.digest()));
  }
  reset(): void {
    this.hash = this.fresh();
  }
}

function bytes(data: ArrayBuffer | ArrayBufferView): Uint8Array {
  return ArrayBuffer.isView(data)
    ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    : new Uint8Array(data);
}

const accessKeyId = 'AKIDEXAMPLE';
const secret = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const keys = new Map([[accessKeyId, secret]]);
const signedAt = Date.UTC(2026, 0, 15, 12, 30, 0);

interface Unsigned {
  method: string;
  path: string;
  query?: Record<string, string | string[]>;
  headers?: Record<string, string>;
  body?: string;
}

/** Signs a request as the AWS SDK does, and gives it as the server receives it. */
async function signed(request: Unsigned, options: { secret?: string; id?: string } = {}): Promise<SigV4Request> {
  const signer = new SignatureV4({
    service: 'lambda',
    region: 'eu-west-3',
    credentials: { accessKeyId: options.id ?? accessKeyId, secretAccessKey: options.secret ?? secret },
    sha256: Sha256,
  });
  const body = request.body ?? '';
  const out = await signer.sign(
    {
      method: request.method,
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: 9000,
      path: request.path,
      query: request.query ?? {},
      headers: { host: '127.0.0.1:9000', ...request.headers },
      body,
    },
    { signingDate: new Date(signedAt) },
  );
  const query = Object.entries(request.query ?? {})
    .flatMap(([name, value]) => (Array.isArray(value) ? value : [value]).map((v) => [name, v] as const))
    .map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`)
    .join('&');
  const headers: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(out.headers)) headers[name.toLowerCase()] = String(value);
  return {
    method: request.method,
    path: query === '' ? request.path : `${request.path}?${query}`,
    headers,
    body: Buffer.from(body),
    now: signedAt + 1000,
    secretFor: (id) => keys.get(id),
  };
}

const invoke: Unsigned = {
  method: 'POST',
  path: '/2015-03-31/functions/my-fn%3Aprod/invocations',
  query: { Qualifier: 'prod' },
  headers: { 'content-type': 'application/json', 'x-amz-invocation-type': 'RequestResponse' },
  body: '{"hello":"world"}',
};
const list: Unsigned = {
  method: 'GET',
  path: '/2015-03-31/functions/',
  query: { MaxItems: '10', Marker: 'a b/c+d=é', FunctionVersion: 'ALL' },
};

describe('verifySigV4', () => {
  it('accepts requests signed with the right secret', async () => {
    for (const request of [invoke, list, { method: 'GET', path: '/2015-03-31/functions/x/./y/../aliases' }]) {
      assert.deepEqual(verifySigV4(await signed(request)), { ok: true, accessKeyId }, request.path);
    }
  });

  it('refuses a wrong secret', async () => {
    const result = verifySigV4(await signed(invoke, { secret: 'not-the-secret' }));
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.code, 'InvalidSignatureException');
    assert.equal(!result.ok && result.status, 403);
  });

  it('refuses an unknown access key id', async () => {
    const result = verifySigV4(await signed(invoke, { id: 'AKIDUNKNOWN' }));
    assert.deepEqual(result, {
      ok: false,
      status: 403,
      code: 'UnrecognizedClientException',
      message: 'The security token included in the request is invalid.',
    });
  });

  it('refuses a tampered body, with and without x-amz-content-sha256', async () => {
    const request = await signed(invoke);
    const tampered = { ...request, body: Buffer.from('{"hello":"there"}') };
    assert.equal(verifySigV4(tampered).ok, false);
    const declared = await signed({ ...invoke, headers: { ...invoke.headers, 'x-amz-content-sha256': sha(invoke) } });
    assert.equal(verifySigV4(declared).ok, true);
    const result = verifySigV4({ ...declared, body: Buffer.from('{"hello":"there"}') });
    assert.equal(
      !result.ok && result.message,
      'The provided x-amz-content-sha256 header does not match what was computed.',
    );
  });

  it('refuses a tampered query, path, method or signed header', async () => {
    const request = await signed(list);
    for (const tampered of [
      { ...request, path: request.path.replace('MaxItems=10', 'MaxItems=11') },
      { ...request, path: `${request.path}&Extra=1` },
      { ...request, path: request.path.replace('/functions/', '/functions/other/') },
      { ...request, method: 'DELETE' },
      { ...request, headers: { ...request.headers, host: 'elsewhere:9000' } },
    ]) {
      const result = verifySigV4(tampered);
      assert.equal(!result.ok && result.code, 'InvalidSignatureException', `${tampered.method} ${tampered.path}`);
    }
  });

  it('refuses x-amz-* and content-type headers the signature does not cover (a replay cannot add them)', async () => {
    const request = await signed(list);
    for (const added of [{ 'x-amz-log-type': 'Tail' }, { 'x-amz-client-context': 'e30=' }, { 'content-type': 'x/y' }]) {
      const result = verifySigV4({ ...request, headers: { ...request.headers, ...added } });
      assert.equal(!result.ok && result.code, 'InvalidSignatureException', JSON.stringify(added));
      assert.match(!result.ok ? result.message : '', /is present but not signed/);
    }
  });

  it('accepts the query in any order and encoding that decodes the same', async () => {
    const request = await signed(list);
    const [path, query = ''] = request.path.split('?');
    const reordered = query.split('&').reverse().join('&').replace('%2F', '%2f');
    assert.equal(verifySigV4({ ...request, path: `${path}?${reordered}` }).ok, true);
  });

  it('refuses a clock more than 15 minutes away, either way', async () => {
    const request = await signed(invoke);
    const minute = 60 * 1000;
    assert.equal(verifySigV4({ ...request, now: signedAt + 15 * minute }).ok, true);
    assert.equal(verifySigV4({ ...request, now: signedAt - 15 * minute }).ok, true);
    const late = verifySigV4({ ...request, now: signedAt + 16 * minute });
    assert.deepEqual(late, {
      ok: false,
      status: 403,
      code: 'InvalidSignatureException',
      message: 'Signature expired: 20260115T123000Z is now earlier than 20260115T123100Z (20260115T124600Z - 15 min.)',
    });
    const early = verifySigV4({ ...request, now: signedAt - 16 * minute });
    assert.equal(!early.ok && early.code, 'InvalidSignatureException');
    assert.match(!early.ok ? early.message : '', /^Signature not yet current: /);
  });

  it('refuses UNSIGNED-PAYLOAD, even with a valid signature', async () => {
    const request = await signed({
      ...invoke,
      headers: { ...invoke.headers, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
    });
    const result = verifySigV4(request);
    assert.equal(!result.ok && result.code, 'InvalidSignatureException');
    assert.match(!result.ok ? result.message : '', /UNSIGNED-PAYLOAD' is not accepted: sign the payload/);
  });

  it('names a missing or malformed Authorization header', async () => {
    const request = await signed(invoke);
    const without = { ...request, headers: { ...request.headers, authorization: undefined } };
    assert.equal(
      !verifySigV4(without).ok && (verifySigV4(without) as { code: string }).code,
      'MissingAuthenticationTokenException',
    );
    for (const authorization of [
      'Bearer k1',
      'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260115/x/lambda/aws4_request',
    ]) {
      const result = verifySigV4({ ...request, headers: { ...request.headers, authorization } });
      assert.equal(!result.ok && result.code, 'IncompleteSignatureException', authorization);
    }
    const otherService = await signed(invoke);
    otherService.service = 's3';
    assert.equal((verifySigV4(otherService) as { code: string }).code, 'InvalidSignatureException');
  });
});

function sha(request: Unsigned): string {
  return createHash('sha256')
    .update(request.body ?? '')
    .digest('hex');
}

describe('access key pairs in API keys', () => {
  it('reads ACCESS_KEY_ID:SECRET keys as pairs and leaves the rest as bearer keys', () => {
    assert.deepEqual(
      accessKeysFrom(requireApiKeys('0.0.0.0', [`plain-key,${accessKeyId}:${secret}`])),
      new Map([[accessKeyId, secret]]),
    );
    assert.deepEqual(accessKeysFrom(['plain', 'with-dash:x', ':nosecret', 'AKID:']), new Map());
    assert.throws(() => requireApiKeys('0.0.0.0', ['AKID:one', 'AKID:two']), /AKID is given two different secrets/);
  });
});

describe('sigV4PreHandler with the AWS SDK', () => {
  let app: FastifyInstance;
  let endpoint: string;
  const calls: string[] = [];

  /** Routes of the Lambda API's shape: buffer bodies, checked by the SigV4 preHandler. */
  const lambdaRoutes =
    (apiKeys: string[]): FastifyPluginCallback =>
    (lambda, _options, done) => {
      lambda.removeAllContentTypeParsers();
      lambda.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, parsed) => parsed(null, body));
      lambda.addHook('preHandler', sigV4PreHandler(apiKeys));
      lambda.get('/functions', (request) => {
        calls.push(request.url);
        return { Functions: [] };
      });
      lambda.post('/functions/:name/invocations', (request, reply) => {
        calls.push(request.url);
        return reply.header('x-amz-executed-version', '$LATEST').send(request.body);
      });
      done();
    };

  /** The Lambda routes beside a /v1 route under the bearer key hook. */
  const start = async (apiKeys: string[]): Promise<void> => {
    app = Fastify();
    app.addHook('onRequest', apiKeyHook(apiKeys));
    app.get('/v1/functions', () => ({ functions: [] }));
    await app.register(lambdaRoutes(apiKeys), { prefix: '/2015-03-31' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    endpoint = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  };
  const client = (id: string, key: string): LambdaClient =>
    new LambdaClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: id, secretAccessKey: key },
      maxAttempts: 1,
    });

  before(() => start(['bearer-key', `${accessKeyId}:${secret}`]));
  after(() => app.close());

  it('accepts the SDK signed with the right secret', async () => {
    const lambda = client(accessKeyId, secret);
    const listed = await lambda.send(new ListFunctionsCommand({ MaxItems: 5, Marker: 'a b+c' }));
    assert.deepEqual(listed.Functions, []);
    const invoked = await lambda.send(
      new InvokeCommand({ FunctionName: 'my-fn:prod', Payload: Buffer.from('{"n":1}') }),
    );
    assert.equal(Buffer.from(invoked.Payload ?? []).toString(), '{"n":1}');
    assert.ok(calls.includes('/2015-03-31/functions/my-fn%3Aprod/invocations'), calls.join(' '));
    lambda.destroy();
  });

  it('refuses a wrong secret and an unknown key, as the SDK surfaces them', async () => {
    for (const [id, key, name] of [
      [accessKeyId, 'wrong', 'InvalidSignatureException'],
      ['AKIDUNKNOWN', secret, 'UnrecognizedClientException'],
    ] as const) {
      const lambda = client(id, key);
      await assert.rejects(
        lambda.send(new ListFunctionsCommand({})),
        (err: Error & { $metadata?: { httpStatusCode?: number } }) => {
          assert.equal(err.name, name);
          assert.equal(err.$metadata?.httpStatusCode, 403);
          return true;
        },
      );
      lambda.destroy();
    }
  });

  it('takes no bearer key on the Lambda API, and bearer keys still on the rest', async () => {
    const bearer = await fetch(`${endpoint}/2015-03-31/functions`, {
      headers: { authorization: 'Bearer bearer-key' },
    });
    assert.equal(bearer.status, 403);
    assert.equal(bearer.headers.get('x-amzn-errortype'), 'IncompleteSignatureException');
    const none = await fetch(`${endpoint}/2015-03-31/functions`);
    assert.equal(none.headers.get('x-amzn-errortype'), 'MissingAuthenticationTokenException');
    assert.deepEqual(await none.json(), { Type: 'User', message: 'Missing Authentication Token' });
    for (const key of ['bearer-key', `${accessKeyId}:${secret}`]) {
      const v1 = await fetch(`${endpoint}/v1/functions`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal(v1.status, 200, key);
    }
    assert.equal((await fetch(`${endpoint}/v1/functions`)).status, 401);
  });

  it('accepts anything without keys', async () => {
    await app.close();
    app = Fastify();
    await app.register(lambdaRoutes([]), { prefix: '/2015-03-31' });
    await app.listen({ host: '127.0.0.1', port: 0 });
    endpoint = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    assert.equal((await fetch(`${endpoint}/2015-03-31/functions`)).status, 200);
    const lambda = client('ANYTHING', 'any');
    assert.deepEqual((await lambda.send(new ListFunctionsCommand({}))).Functions, []);
    lambda.destroy();
  });
});
