// The AWS Lambda API end to end: the real `@aws-sdk/client-lambda` against a real `savassan start` process with real
// sandbox processes. A function's whole life (create, invoke three ways, update, publish, alias with weights, list
// in pages, delete) and the errors as the SDK surfaces them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  CreateAliasCommand,
  CreateFunctionCommand,
  DeleteAliasCommand,
  DeleteFunctionCommand,
  DeleteFunctionEventInvokeConfigCommand,
  GetAliasCommand,
  GetFunctionCommand,
  GetFunctionConfigurationCommand,
  GetFunctionEventInvokeConfigCommand,
  InvokeCommand,
  LambdaClient,
  ListAliasesCommand,
  ListFunctionsCommand,
  ListVersionsByFunctionCommand,
  PublishVersionCommand,
  PutFunctionEventInvokeConfigCommand,
  UpdateAliasCommand,
  UpdateFunctionCodeCommand,
  UpdateFunctionConfigurationCommand,
  UpdateFunctionEventInvokeConfigCommand,
} from '@aws-sdk/client-lambda';
import { strToU8, zipSync } from 'fflate';
import { SavassanClient } from '../../src/client/client.js';
import { eventually, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

function bundle(source: string): Uint8Array {
  return zipSync({ 'index.js': strToU8(source) });
}

const v1 = bundle(
  'exports.handler = async (event) => { console.log("hello from v1"); ' +
    'if (event.fail) throw new TypeError("asked to fail"); return { v: 1, env: process.env.GREETING ?? null, event }; };',
);
const v2 = bundle('exports.handler = async () => ({ v: 2, env: process.env.GREETING ?? null });');
const arnPrefix = 'arn:aws:lambda:us-east-1:000000000000:function:';

interface SdkError {
  name: string;
  message: string;
  $metadata: { httpStatusCode?: number };
  $response?: { headers: Record<string, string> };
}

async function sdkError(call: Promise<unknown>): Promise<SdkError> {
  try {
    await call;
  } catch (err) {
    return err as SdkError;
  }
  assert.fail('expected the call to fail');
}

const decode = (payload: Uint8Array | undefined) => JSON.parse(Buffer.from(payload ?? []).toString('utf8')) as unknown;

describe('the Lambda API with the AWS SDK', () => {
  let server: ServerProcess;
  let lambda: LambdaClient;

  before(async () => {
    server = await startServer(['--no-examples']);
    lambda = new LambdaClient({
      endpoint: server.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
      maxAttempts: 1,
    });
  });

  after(async () => {
    lambda?.destroy();
    await server?.cleanup();
  });

  it('creates, invokes three ways, updates, publishes, aliases, lists and deletes a function', async () => {
    const created = await lambda.send(
      new CreateFunctionCommand({
        FunctionName: 'shop',
        Runtime: 'nodejs20.x',
        Role: 'arn:aws:iam::000000000000:role/any',
        Handler: 'index.handler',
        Code: { ZipFile: v1 },
        Environment: { Variables: { GREETING: 'hi' } },
        Timeout: 5,
        MemorySize: 256,
        Description: 'a shop',
      }),
    );
    assert.equal(created.$metadata.httpStatusCode, 201);
    assert.equal(created.FunctionArn, `${arnPrefix}shop`);
    assert.equal(created.Version, '$LATEST');
    assert.equal(created.Runtime, 'nodejs20.x');
    assert.equal(created.Timeout, 5);
    assert.equal(created.MemorySize, 256);
    assert.deepEqual(created.Environment?.Variables, { GREETING: 'hi' });

    // RequestResponse, with the log's tail.
    const ran = await lambda.send(
      new InvokeCommand({ FunctionName: 'shop', Payload: strToU8('{"n":1}'), LogType: 'Tail' }),
    );
    assert.equal(ran.StatusCode, 200);
    assert.equal(ran.ExecutedVersion, '$LATEST');
    assert.equal(ran.FunctionError, undefined);
    assert.deepEqual(decode(ran.Payload), { v: 1, env: 'hi', event: { n: 1 } });
    assert.match(Buffer.from(ran.LogResult ?? '', 'base64').toString('utf8'), /hello from v1/);

    // A function error: 200, Unhandled, Lambda's error shape.
    const failed = await lambda.send(new InvokeCommand({ FunctionName: 'shop', Payload: strToU8('{"fail":true}') }));
    assert.equal(failed.StatusCode, 200);
    assert.equal(failed.FunctionError, 'Unhandled');
    const error = decode(failed.Payload) as { errorType: string; errorMessage: string; trace: string[] };
    assert.equal(error.errorType, 'TypeError');
    assert.equal(error.errorMessage, 'asked to fail');
    assert.ok(Array.isArray(error.trace));

    // DryRun and Event.
    const dry = await lambda.send(new InvokeCommand({ FunctionName: 'shop', InvocationType: 'DryRun' }));
    assert.equal(dry.StatusCode, 204);
    const queued = await lambda.send(
      new InvokeCommand({ FunctionName: `${arnPrefix}shop`, InvocationType: 'Event', Payload: strToU8('{}') }),
    );
    assert.equal(queued.StatusCode, 202);
    const id = queued.$metadata.requestId;
    assert.ok(id !== undefined);
    const state = await eventually(
      async () => (await (await fetch(`${server.url}/v1/invocations/${id}`)).json()) as { state: string },
      (s) => s.state === 'succeeded',
      15_000,
    );
    assert.equal(state.state, 'succeeded');

    // Publish version 1, then new code and configuration ($LATEST moves; version 1 stays).
    const published = await lambda.send(new PublishVersionCommand({ FunctionName: 'shop' }));
    assert.equal(published.Version, '1');
    assert.equal(published.FunctionArn, `${arnPrefix}shop:1`);
    await lambda.send(new UpdateFunctionCodeCommand({ FunctionName: 'shop', ZipFile: v2 }));
    const updated = await lambda.send(
      new UpdateFunctionConfigurationCommand({
        FunctionName: 'shop',
        Environment: { Variables: { GREETING: 'hello' } },
        Timeout: 7,
      }),
    );
    assert.equal(updated.Timeout, 7);
    const v3 = (await lambda.send(new PublishVersionCommand({ FunctionName: 'shop' }))).Version;
    assert.equal(v3, '3');
    const latest = await lambda.send(new InvokeCommand({ FunctionName: 'shop' }));
    assert.deepEqual(decode(latest.Payload), { v: 2, env: 'hello' });
    const pinned = await lambda.send(new InvokeCommand({ FunctionName: 'shop', Qualifier: '1' }));
    assert.equal(pinned.ExecutedVersion, '1');
    assert.equal((decode(pinned.Payload) as { v: number }).v, 1);
    const bySuffix = await lambda.send(new InvokeCommand({ FunctionName: 'shop:1' }));
    assert.equal(bySuffix.ExecutedVersion, '1');

    const config = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: 'shop', Qualifier: '1' }));
    assert.equal(config.Version, '1');
    assert.deepEqual(config.Environment?.Variables, { GREETING: 'hi' });
    const got = await lambda.send(new GetFunctionCommand({ FunctionName: 'shop' }));
    assert.equal(got.Configuration?.Version, '$LATEST');
    assert.equal(got.Configuration?.Timeout, 7);

    // An alias on version 1 with 30 % on version 3: both run, each reported as the version that ran.
    const alias = await lambda.send(
      new CreateAliasCommand({
        FunctionName: 'shop',
        Name: 'prod',
        FunctionVersion: '1',
        RoutingConfig: { AdditionalVersionWeights: { '3': 0.3 } },
      }),
    );
    assert.equal(alias.AliasArn, `${arnPrefix}shop:prod`);
    assert.equal(alias.FunctionVersion, '1');
    assert.deepEqual(alias.RoutingConfig?.AdditionalVersionWeights, { '3': 0.3 });
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const out = await lambda.send(new InvokeCommand({ FunctionName: 'shop', Qualifier: 'prod' }));
      seen.add(out.ExecutedVersion ?? '');
    }
    assert.deepEqual([...seen].sort(), ['1', '3']);
    const moved = await lambda.send(
      new UpdateAliasCommand({ FunctionName: 'shop', Name: 'prod', FunctionVersion: '3', RoutingConfig: {} }),
    );
    assert.equal(moved.FunctionVersion, '3');
    assert.equal(moved.RoutingConfig, undefined);
    assert.equal((await lambda.send(new GetAliasCommand({ FunctionName: 'shop', Name: 'prod' }))).FunctionVersion, '3');
    const aliases = await lambda.send(new ListAliasesCommand({ FunctionName: 'shop' }));
    assert.deepEqual(
      aliases.Aliases?.map((a) => a.Name),
      ['prod'],
    );

    // Versions in pages: $LATEST, 1, 2, 3.
    const firstPage = await lambda.send(new ListVersionsByFunctionCommand({ FunctionName: 'shop', MaxItems: 2 }));
    assert.deepEqual(
      firstPage.Versions?.map((v) => v.Version),
      ['$LATEST', '1'],
    );
    const secondPage = await lambda.send(
      new ListVersionsByFunctionCommand({ FunctionName: 'shop', MaxItems: 2, Marker: firstPage.NextMarker }),
    );
    assert.deepEqual(
      secondPage.Versions?.map((v) => v.Version),
      ['2', '3'],
    );
    assert.equal(secondPage.NextMarker, undefined);

    await lambda.send(new DeleteAliasCommand({ FunctionName: 'shop', Name: 'prod' }));
    await lambda.send(new DeleteFunctionCommand({ FunctionName: 'shop' }));
    const gone = await sdkError(lambda.send(new GetFunctionCommand({ FunctionName: 'shop' })));
    assert.equal(gone.name, 'ResourceNotFoundException');
  });

  it('lists functions in pages', async () => {
    for (const name of ['page-a', 'page-b', 'page-c']) {
      await lambda.send(
        new CreateFunctionCommand({
          FunctionName: name,
          Runtime: 'nodejs22.x',
          Role: 'r',
          Handler: 'index.handler',
          Code: { ZipFile: v2 },
        }),
      );
    }
    const names: string[] = [];
    let marker: string | undefined;
    let pages = 0;
    do {
      const page = await lambda.send(new ListFunctionsCommand({ MaxItems: 2, Marker: marker }));
      names.push(...(page.Functions ?? []).map((f) => f.FunctionName ?? ''));
      marker = page.NextMarker;
      pages += 1;
    } while (marker !== undefined);
    assert.deepEqual(names, ['page-a', 'page-b', 'page-c']);
    assert.equal(pages, 2);
    const config = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: 'page-a' }));
    assert.equal(config.Runtime, 'nodejs24.x', 'nodejs22.x runs on Node 24');
  });

  it('keeps retries and destinations as the event invoke config', async () => {
    await lambda.send(
      new CreateFunctionCommand({
        FunctionName: 'async-fn',
        Role: 'r',
        Handler: 'index.handler',
        Code: { ZipFile: v2 },
      }),
    );
    const put = await lambda.send(
      new PutFunctionEventInvokeConfigCommand({
        FunctionName: 'async-fn',
        MaximumRetryAttempts: 0,
        MaximumEventAgeInSeconds: 120,
        DestinationConfig: { OnFailure: { Destination: `${arnPrefix}page-a` } },
      }),
    );
    assert.equal(put.MaximumRetryAttempts, 0);
    const got = await lambda.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: 'async-fn' }));
    assert.equal(got.MaximumEventAgeInSeconds, 120);
    assert.equal(got.DestinationConfig?.OnFailure?.Destination, `${arnPrefix}page-a`);
    assert.equal(got.DestinationConfig?.OnSuccess?.Destination, undefined);

    // Update keeps what it does not name; Delete restores the defaults.
    const updated = await lambda.send(
      new UpdateFunctionEventInvokeConfigCommand({ FunctionName: 'async-fn', MaximumRetryAttempts: 1 }),
    );
    assert.equal(updated.MaximumRetryAttempts, 1);
    assert.equal(updated.MaximumEventAgeInSeconds, 120);
    assert.equal(updated.DestinationConfig?.OnFailure?.Destination, `${arnPrefix}page-a`);
    await lambda.send(new DeleteFunctionEventInvokeConfigCommand({ FunctionName: 'async-fn' }));
    const defaults = await lambda.send(new GetFunctionEventInvokeConfigCommand({ FunctionName: 'async-fn' }));
    assert.equal(defaults.MaximumRetryAttempts, 2);
    assert.equal(defaults.DestinationConfig?.OnFailure?.Destination, undefined);

    // Every version of every function: each function's $LATEST, then its versions.
    const all = await lambda.send(new ListFunctionsCommand({ FunctionVersion: 'ALL' }));
    const ofAsync = (all.Functions ?? []).filter((f) => f.FunctionName === 'async-fn').map((f) => f.Version);
    assert.deepEqual(ofAsync, ['$LATEST', '1', '2', '3', '4']);
  });

  it('answers a timed-out invocation as a function error, with its log', async () => {
    const sleepy = bundle(
      'exports.handler = async () => { console.log("going to sleep"); await new Promise((r) => setTimeout(r, 5000)); };',
    );
    await lambda.send(
      new CreateFunctionCommand({
        FunctionName: 'sleepy',
        Role: 'r',
        Handler: 'index.handler',
        Timeout: 1,
        Code: { ZipFile: sleepy },
      }),
    );
    const out = await lambda.send(new InvokeCommand({ FunctionName: 'sleepy', LogType: 'Tail' }));
    assert.equal(out.StatusCode, 200);
    assert.equal(out.FunctionError, 'Unhandled');
    assert.equal((decode(out.Payload) as { errorType: string }).errorType, 'Sandbox.Timedout');
    assert.match(Buffer.from(out.LogResult ?? '', 'base64').toString('utf8'), /going to sleep/);
  });

  it('answers errors as the SDK expects them', async () => {
    const missing = await sdkError(lambda.send(new InvokeCommand({ FunctionName: 'nope' })));
    assert.equal(missing.name, 'ResourceNotFoundException');
    assert.equal(missing.$metadata.httpStatusCode, 404);

    const badVersion = await sdkError(lambda.send(new InvokeCommand({ FunctionName: 'page-b', Qualifier: '99' })));
    assert.equal(badVersion.name, 'ResourceNotFoundException');

    const notJson = await sdkError(lambda.send(new InvokeCommand({ FunctionName: 'page-b', Payload: strToU8('{x') })));
    assert.equal(notJson.name, 'InvalidRequestContentException');
    assert.equal(notJson.$metadata.httpStatusCode, 400);

    const tooLarge = await sdkError(
      lambda.send(new InvokeCommand({ FunctionName: 'page-b', Payload: strToU8(`"${'x'.repeat(7 * 1024 * 1024)}"`) })),
    );
    assert.equal(tooLarge.name, 'RequestTooLargeException');
    assert.equal(tooLarge.$metadata.httpStatusCode, 413);

    const badRuntime = await sdkError(
      lambda.send(
        new CreateFunctionCommand({
          FunctionName: 'old',
          Runtime: 'python3.12',
          Role: 'r',
          Handler: 'index.handler',
          Code: { ZipFile: v2 },
        }),
      ),
    );
    assert.equal(badRuntime.name, 'InvalidParameterValueException');
    assert.equal(badRuntime.$metadata.httpStatusCode, 400);

    const noHandler = await sdkError(
      lambda.send(
        new CreateFunctionCommand({ FunctionName: 'old', Role: 'r', Handler: 'main.run', Code: { ZipFile: v2 } }),
      ),
    );
    assert.equal(noHandler.name, 'InvalidParameterValueException');

    const exists = await sdkError(
      lambda.send(
        new CreateFunctionCommand({
          FunctionName: 'page-b',
          Role: 'r',
          Handler: 'index.handler',
          Code: { ZipFile: v2 },
        }),
      ),
    );
    assert.equal(exists.name, 'ResourceConflictException');
    assert.equal(exists.$metadata.httpStatusCode, 409);

    const unsupported = await fetch(`${server.url}/2015-03-31/functions/page-b/policy`);
    assert.equal(unsupported.status, 404);
    assert.equal(unsupported.headers.get('x-amzn-errortype'), 'ResourceNotFoundException');
    assert.equal(((await unsupported.json()) as { Type: string }).Type, 'User');

    const dryRunUpdate = await sdkError(
      lambda.send(new UpdateFunctionCodeCommand({ FunctionName: 'page-b', ZipFile: v1, DryRun: true })),
    );
    assert.equal(dryRunUpdate.name, 'InvalidParameterValueException');

    const badArn = await sdkError(lambda.send(new InvokeCommand({ FunctionName: 'arn:aws:s3:::bucket' })));
    assert.equal(badArn.name, 'InvalidParameterValueException');
  });

  it('leaves the native API as it was', async () => {
    const native = await fetch(`${server.url}/v1/functions/page-b/invoke`, { method: 'POST', body: '{x' });
    assert.equal(native.status, 400);
    assert.equal(((await native.json()) as { error: { code: string } }).error.code, 'BAD_REQUEST');
    const ok = await fetch(`${server.url}/v1/functions/page-b/invoke`, { method: 'POST', body: '{}' });
    assert.equal(ok.status, 200);
    const unknown = await fetch(`${server.url}/v1/functions/nope`);
    assert.equal(((await unknown.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
  });
});

describe('the Lambda API of a server with its own region and account', () => {
  let server: ServerProcess;
  let lambda: LambdaClient;

  before(async () => {
    server = await startServer([
      '--no-examples',
      '--region',
      'eu-west-2',
      '--account-id',
      '123456789012',
      '--queue-wait',
      '1',
    ]);
    lambda = new LambdaClient({
      endpoint: server.url,
      region: 'eu-west-2',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
      maxAttempts: 1,
    });
  });

  after(async () => {
    lambda?.destroy();
    await server?.cleanup();
  });

  it('names them in ARNs, and throttles with Retry-After', async () => {
    const slow = bundle(
      'exports.handler = async (e) => { await new Promise((r) => setTimeout(r, e.ms ?? 0)); return 1; };',
    );
    await server.client.deploy('single', slow, { maxInstances: 1 });
    const config = await lambda.send(new GetFunctionConfigurationCommand({ FunctionName: 'single' }));
    assert.equal(config.FunctionArn, 'arn:aws:lambda:eu-west-2:123456789012:function:single');

    await lambda.send(new InvokeCommand({ FunctionName: 'single' }));
    const busy = lambda.send(new InvokeCommand({ FunctionName: 'single', Payload: strToU8('{"ms":4000}') }));
    await eventually(
      async () => (await server.client.listNodes()).nodes[0]?.sandboxes ?? 0,
      (n) => n >= 1,
    );
    await new Promise((r) => setTimeout(r, 300));
    const throttled = await sdkError(lambda.send(new InvokeCommand({ FunctionName: 'single' })));
    assert.equal(throttled.name, 'TooManyRequestsException');
    assert.equal(throttled.$metadata.httpStatusCode, 429);
    assert.ok(Number(throttled.$response?.headers['retry-after']) >= 1);
    assert.equal((await busy).StatusCode, 200);
  });
});

describe('the Lambda API where the platform has API keys', () => {
  let server: ServerProcess;
  const client = (secretAccessKey: string, accessKeyId = 'AKIDTEST') =>
    new LambdaClient({
      endpoint: server.url,
      region: 'us-east-1',
      credentials: { accessKeyId, secretAccessKey },
      maxAttempts: 1,
    });

  before(async () => {
    server = await startServer(['--no-examples'], undefined, { SAVASSAN_API_KEY: 'AKIDTEST:right-secret,plain-key' });
    const admin = new SavassanClient({ url: server.url, apiKey: 'plain-key' });
    await admin.deploy('signed', zipSync({ 'index.js': strToU8('exports.handler = async () => "signed";') }));
    await admin.deploy(
      'contextual',
      zipSync({ 'index.js': strToU8('exports.handler = async (e, context) => context.clientContext ?? null;') }),
    );
  });
  after(async () => {
    await server?.cleanup();
  });

  it('takes requests signed with an access key pair of the API keys, and refuses others', async () => {
    const good = await client('right-secret').send(new InvokeCommand({ FunctionName: 'signed' }));
    assert.equal(good.StatusCode, 200);
    assert.equal(Buffer.from(good.Payload!).toString(), '"signed"');
    const refusal = async (lambda: LambdaClient) => {
      try {
        await lambda.send(new InvokeCommand({ FunctionName: 'signed' }));
      } catch (err) {
        return err as { name: string; $metadata: { httpStatusCode?: number } };
      }
      throw new Error('a request with a bad signature was taken');
    };
    const wrong = await refusal(client('wrong-secret'));
    assert.equal(wrong.name, 'InvalidSignatureException');
    assert.equal(wrong.$metadata.httpStatusCode, 403);
    const unknown = await refusal(client('right-secret', 'AKIDOTHER'));
    assert.equal(unknown.name, 'UnrecognizedClientException');
    // A bearer key is for /v1: the Lambda API wants a signature.
    const bearer = await fetch(`${server.url}/2015-03-31/functions/signed/invocations`, {
      method: 'POST',
      headers: { authorization: 'Bearer plain-key' },
      body: '{}',
    });
    assert.equal(bearer.status, 403);
  });

  it('hands X-Amz-Client-Context to the handler as context.clientContext, and refuses a malformed one', async () => {
    const lambda = client('right-secret');
    const clientContext = { client: { app_title: 'shop' }, custom: { cart: 3 } };
    const ran = await lambda.send(
      new InvokeCommand({
        FunctionName: 'contextual',
        ClientContext: Buffer.from(JSON.stringify(clientContext)).toString('base64'),
      }),
    );
    assert.deepEqual(JSON.parse(Buffer.from(ran.Payload!).toString()), clientContext);
    const without = await lambda.send(new InvokeCommand({ FunctionName: 'contextual' }));
    assert.equal(Buffer.from(without.Payload!).toString(), 'null');
    try {
      await lambda.send(new InvokeCommand({ FunctionName: 'contextual', ClientContext: 'not base64 JSON!' }));
      assert.fail('a malformed client context was taken');
    } catch (err) {
      assert.equal((err as { name: string }).name, 'InvalidParameterValueException');
    }
  });
});
