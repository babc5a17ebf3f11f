import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  corsHeaders,
  corsPreflight,
  functionUrlAnswer,
  functionUrlEvent,
  functionUrlHost,
  isPreflight,
  isTextContentType,
} from './function-url-event.js';
import type { FunctionUrlRequest } from './function-url-event.js';

const context = {
  requestId: 'r-1',
  functionName: 'web',
  accountId: '000000000000',
  now: Date.UTC(2026, 2, 5, 7, 8, 9),
};

function request(overrides: Partial<FunctionUrlRequest> = {}): FunctionUrlRequest {
  return {
    method: 'GET',
    rawPath: '/',
    rawQueryString: '',
    rawHeaders: ['Host', 'web.fn.example'],
    body: Buffer.alloc(0),
    sourceIp: '10.0.0.7',
    protocol: 'HTTP/1.1',
    ...overrides,
  };
}

describe('functionUrlEvent', () => {
  it('builds the payload format 2.0 event of a request', () => {
    const event = functionUrlEvent(
      request({
        method: 'POST',
        rawPath: '/users/7%20x',
        rawQueryString: 'a=1&b=two%20words&a=3&flag',
        rawHeaders: [
          'Host',
          'web.fn.example',
          'User-Agent',
          'curl/8',
          'X-Multi',
          'one',
          'x-multi',
          'two',
          'Cookie',
          'a=1; b=2',
          'Content-Type',
          'application/json',
        ],
        body: Buffer.from('{"n":1}'),
      }),
      context,
    );
    assert.deepEqual(event, {
      version: '2.0',
      routeKey: '$default',
      rawPath: '/users/7%20x',
      rawQueryString: 'a=1&b=two%20words&a=3&flag',
      cookies: ['a=1', 'b=2'],
      headers: {
        host: 'web.fn.example',
        'user-agent': 'curl/8',
        'x-multi': 'one,two',
        'content-type': 'application/json',
      },
      queryStringParameters: { a: '1,3', b: 'two words', flag: '' },
      requestContext: {
        accountId: '000000000000',
        apiId: 'web',
        domainName: 'web.fn.example',
        domainPrefix: 'web',
        http: { method: 'POST', path: '/users/7%20x', protocol: 'HTTP/1.1', sourceIp: '10.0.0.7', userAgent: 'curl/8' },
        requestId: 'r-1',
        routeKey: '$default',
        stage: '$default',
        time: '05/Mar/2026:07:08:09 +0000',
        timeEpoch: context.now,
      },
      body: '{"n":1}',
      isBase64Encoded: false,
    });
  });

  it('leaves out what a request does not have, and sends binary bodies as base64', () => {
    const empty = functionUrlEvent(request(), context);
    assert.equal('cookies' in empty, false);
    assert.equal('queryStringParameters' in empty, false);
    assert.equal('body' in empty, false);
    assert.equal(empty.isBase64Encoded, false);
    const bytes = Buffer.from([0, 1, 2, 250, 255]);
    const binary = functionUrlEvent(
      request({ method: 'PUT', rawHeaders: ['Content-Type', 'image/png'], body: bytes }),
      context,
    );
    assert.equal(binary.body, bytes.toString('base64'));
    assert.equal(binary.isBase64Encoded, true);
  });

  it('tells text content types from binary ones', () => {
    for (const type of [
      undefined,
      'text/plain',
      'application/json; charset=utf-8',
      'application/ld+json',
      'application/x-www-form-urlencoded',
    ]) {
      assert.equal(isTextContentType(type), true, String(type));
    }
    for (const type of ['image/png', 'application/octet-stream', 'application/pdf']) {
      assert.equal(isTextContentType(type), false, type);
    }
  });
});

describe('functionUrlAnswer', () => {
  const answer = (value: unknown) => functionUrlAnswer(Buffer.from(JSON.stringify(value)));

  it('maps a structured answer: status, headers, cookies, body', () => {
    const mapped = answer({
      statusCode: 302,
      headers: { Location: '/next', 'Content-Type': 'text/html', 'X-Count': 3 },
      multiValueHeaders: { 'X-Multi': ['a', 'b'], 'Set-Cookie': ['m=1'] },
      cookies: ['s=1; Path=/', 't=2'],
      body: '<p>moved</p>',
    });
    assert.equal(mapped.status, 302);
    assert.deepEqual(mapped.headers, {
      location: '/next',
      'content-type': 'text/html',
      'x-count': '3',
      'x-multi': 'a,b',
    });
    assert.deepEqual(mapped.cookies, ['m=1', 's=1; Path=/', 't=2']);
    assert.equal(mapped.body.toString(), '<p>moved</p>');
  });

  it("drops framing headers from a function's answer: the platform frames it", () => {
    const mapped = answer({
      statusCode: 200,
      headers: { 'Transfer-Encoding': 'chunked', 'Content-Length': '1', Connection: 'close', 'X-Kept': '1' },
      body: 'ok',
    });
    assert.deepEqual(mapped.headers, { 'content-type': 'application/json', 'x-kept': '1' });
  });

  it('decodes a base64 body, and defaults the content type to JSON', () => {
    const bytes = Buffer.from([0, 255, 1, 128]);
    const mapped = answer({ statusCode: 200, body: bytes.toString('base64'), isBase64Encoded: true });
    assert.deepEqual(mapped.body, bytes);
    assert.equal(mapped.headers['content-type'], 'application/json');
    assert.equal(answer({ statusCode: 204 }).body.length, 0);
  });

  it('answers any other JSON value as a 200 JSON body', () => {
    for (const value of [{ hello: 'world' }, [1, 2], 'text', 42, null, { statusCode: 'nope' }]) {
      const mapped = answer(value);
      assert.equal(mapped.status, 200);
      assert.equal(mapped.headers['content-type'], 'application/json');
      assert.deepEqual(JSON.parse(mapped.body.toString()), value);
    }
    assert.equal(functionUrlAnswer(null).body.toString(), 'null');
  });

  it('answers 502 for a status code out of range', () => {
    assert.equal(answer({ statusCode: 42 }).status, 502);
  });
});

describe('CORS', () => {
  const cors = { allowOrigins: ['https://a.example'], allowMethods: ['GET', 'POST'], allowHeaders: ['x-token'] };

  it('knows a preflight', () => {
    assert.equal(isPreflight('OPTIONS', { origin: 'x', 'access-control-request-method': 'GET' }), true);
    assert.equal(isPreflight('OPTIONS', { origin: 'x' }), false);
    assert.equal(isPreflight('GET', { origin: 'x', 'access-control-request-method': 'GET' }), false);
  });

  it('answers a preflight of an allowed origin, method and headers with 204', () => {
    assert.deepEqual(corsPreflight(cors, 'https://a.example', 'post', 'X-Token'), {
      status: 204,
      headers: {
        'access-control-allow-origin': 'https://a.example',
        vary: 'Origin',
        'access-control-allow-methods': 'GET, POST',
        'access-control-allow-headers': 'x-token',
        'access-control-max-age': '300',
      },
    });
  });

  it('refuses a preflight of another origin, method or header with 403', () => {
    assert.equal(corsPreflight(cors, 'https://b.example', 'GET', undefined).status, 403);
    assert.equal(corsPreflight(cors, 'https://a.example', 'DELETE', undefined).status, 403);
    assert.equal(corsPreflight(cors, 'https://a.example', 'GET', 'x-other').status, 403);
  });

  it('adds CORS headers for allowed origins only', () => {
    assert.deepEqual(corsHeaders(cors, 'https://b.example'), {});
    assert.deepEqual(corsHeaders(cors, undefined), {});
    assert.deepEqual(corsHeaders({ ...cors, allowOrigins: ['*'] }, 'https://b.example'), {
      'access-control-allow-origin': '*',
    });
  });
});

describe('functionUrlHost', () => {
  it('names the function of a host under the URL domain, with or without a port', () => {
    const host = functionUrlHost('FN.example.');
    assert.ok(host !== null);
    assert.equal(host('web.fn.example'), 'web');
    assert.equal(host('Web.FN.example:8080'), 'web');
    assert.equal(host('fn.example'), null);
    assert.equal(host('a.b.fn.example'), null);
    assert.equal(host('web.other.example'), null);
    assert.equal(host(undefined), null);
    assert.equal(functionUrlHost(undefined), null);
    assert.equal(functionUrlHost(''), null);
  });
});
