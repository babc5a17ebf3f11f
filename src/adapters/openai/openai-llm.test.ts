// The OpenAI-compatible adapter against a real HTTP server that speaks chat completions: the request it sends (key as
// Bearer, the schema as a json_schema response format), the fallback to json_object, and every failure as a
// PlatformError that never carries the key.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { isPlatformError } from '../../core/errors.js';
import { planJsonSchema } from '../../core/plan.js';
import type { LlmRequest } from '../../core/ports/llm.js';
import { startChatCompletionsServer } from '../../../test/helpers/chat-completions-server.js';
import type { ChatCompletionsServer } from '../../../test/helpers/chat-completions-server.js';
import { createOpenAiLlm } from './openai-llm.js';

const key = 'sk-test-very-secret-key';
const request: LlmRequest = {
  messages: [
    { role: 'system', content: 'plan' },
    { role: 'user', content: 'my dog' },
  ],
  jsonSchema: planJsonSchema,
  maxTokens: 512,
};

const rejection = async (promise: Promise<unknown>) => {
  try {
    await promise;
  } catch (err) {
    assert.ok(isPlatformError(err), String(err));
    assert.ok(!err.message.includes(key), `the key leaked into: ${err.message}`);
    return err;
  }
  assert.fail('expected a rejection');
};

describe('the OpenAI-compatible adapter', () => {
  let server: ChatCompletionsServer;
  before(async () => {
    server = await startChatCompletionsServer();
  });
  after(() => server.close());

  it('posts the messages with the key as Bearer and the schema as a json_schema response format', async () => {
    server.script([{ kind: 'answer', content: '{"a": 1}' }]);
    const llm = createOpenAiLlm({ url: `${server.url}/`, model: 'qwen-test', apiKey: key });
    assert.equal(llm.kind, 'openai-compatible');
    assert.equal(llm.constrained, true);
    const answer = await llm.complete(request);
    assert.deepEqual(answer, { text: '{"a": 1}', model: 'qwen-test', completionTokens: 20 });
    const seen = server.requests.at(-1);
    assert.equal(seen?.authorization, `Bearer ${key}`);
    assert.equal(seen?.body.model, 'qwen-test');
    assert.deepEqual(seen?.body.messages, request.messages);
    assert.equal(seen?.body.max_tokens, 512);
    assert.equal(seen?.body.temperature, 0);
    assert.equal(seen?.body.response_format?.type, 'json_schema');
    assert.deepEqual(seen?.body.response_format?.json_schema?.schema, planJsonSchema);
    await llm.close();
    await rejection(llm.complete(request));
  });

  it('sends no Authorization header without a key', async () => {
    server.script([{ kind: 'answer', content: 'x' }]);
    await createOpenAiLlm({ url: server.url, model: 'm' }).complete(request);
    assert.equal(server.requests.at(-1)?.authorization, undefined);
  });

  it('falls back to json_object when the server refuses json_schema, and stays there', async () => {
    server.script([{ kind: 'no-json-schema', content: '{"ok": true}' }]);
    const before = server.requests.length;
    const llm = createOpenAiLlm({ url: server.url, model: 'm', apiKey: key });
    assert.equal((await llm.complete(request)).text, '{"ok": true}');
    assert.equal(llm.constrained, false);
    assert.deepEqual(
      server.requests.slice(before).map((r) => r.body.response_format?.type),
      ['json_schema', 'json_object'],
    );
    await llm.complete(request);
    assert.equal(server.requests.at(-1)?.body.response_format?.type, 'json_object');
    assert.equal(server.requests.length, before + 3);
  });

  it('a 400 that does not name the response format is an error, not a fallback', async () => {
    server.script([{ kind: 'status', status: 400, body: '{"error":{"message":"max_tokens is too large"}}' }]);
    const llm = createOpenAiLlm({ url: server.url, model: 'm', apiKey: key });
    const err = await rejection(llm.complete(request));
    assert.equal(err.code, 'UNAVAILABLE');
    assert.match(err.message, /refused the request \(400\).*max_tokens is too large/);
    assert.equal(llm.constrained, true);
  });

  it('5xx, 429 and auth failures are UNAVAILABLE saying which, without the key even when echoed', async () => {
    const llm = createOpenAiLlm({ url: server.url, model: 'm', apiKey: key });
    server.script([{ kind: 'status', status: 500, body: 'boom' }]);
    assert.match(
      (await rejection(llm.complete(request))).message,
      /^\[UNAVAILABLE\] the model server failed \(500\): boom/,
    );
    server.script([{ kind: 'status', status: 429, body: 'slow down' }]);
    assert.match((await rejection(llm.complete(request))).message, /rate limiting \(429\)/);
    server.script([{ kind: 'status', status: 401, body: `{"error":"bad key ${key}"}` }]);
    const auth = await rejection(llm.complete(request));
    assert.match(auth.message, /refused the credentials \(401\).*SAVASSAN_LLM_API_KEY.*bad key \*\*\*/);
  });

  it('an answer that is not a chat completion is UNAVAILABLE', async () => {
    const llm = createOpenAiLlm({ url: server.url, model: 'm' });
    server.script([{ kind: 'raw', body: '<html>proxy</html>' }]);
    assert.match((await rejection(llm.complete(request))).message, /not JSON/);
    server.script([{ kind: 'raw', body: '{"choices": []}' }]);
    assert.match((await rejection(llm.complete(request))).message, /not a chat completion/);
  });

  it('an answer over 256 KiB is UNAVAILABLE, and the read stops there (error bodies too)', async () => {
    const llm = createOpenAiLlm({ url: server.url, model: 'm' });
    const bytes = 64 * 1024 * 1024;
    server.script([{ kind: 'huge', status: 200, bytes }]);
    const err = await rejection(llm.complete(request));
    assert.equal(err.code, 'UNAVAILABLE');
    assert.match(err.message, /the model server's answer is over 256 KiB/);
    const answer = server.streams.at(-1);
    await answer?.over;
    assert.equal(answer?.ended, false, 'the server sent the whole body: the client read it all');
    assert.ok((answer?.written ?? bytes) < bytes);

    server.script([{ kind: 'huge', status: 500, bytes }]);
    const failed = await rejection(llm.complete(request));
    assert.match(failed.message, /the model server failed \(500\): x{300}…$/);
    const error = server.streams.at(-1);
    await error?.over;
    assert.equal(error?.ended, false, 'the server sent the whole error body: the client read it all');
  });

  it('a server slower than the timeout is REQUEST_TIMEOUT', async () => {
    server.script([{ kind: 'slow', ms: 30_000, content: '{}' }]);
    const llm = createOpenAiLlm({ url: server.url, model: 'm', timeoutMs: 200 });
    const err = await rejection(llm.complete(request));
    assert.equal(err.code, 'REQUEST_TIMEOUT');
    assert.match(err.message, /did not answer within 200 ms/);
  });

  it('an unreachable server is UNAVAILABLE naming the endpoint', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const err = await rejection(createOpenAiLlm({ url: `http://127.0.0.1:${port}/v1`, model: 'm' }).complete(request));
    assert.equal(err.code, 'UNAVAILABLE');
    assert.match(
      err.message,
      new RegExp(`cannot reach the model server at http://127.0.0.1:${port}/v1/chat/completions`),
    );
  });

  it('names the endpoint by origin and path only: no query, no credentials', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const url = `http://user:pw-secret@127.0.0.1:${port}/v1?api-key=sk-in-query#frag`;
    const err = await rejection(createOpenAiLlm({ url, model: 'm' }).complete(request));
    assert.match(err.message, new RegExp(`at http://127.0.0.1:${port}/v1/chat/completions: `));
    assert.doesNotMatch(err.message, /sk-in-query|pw-secret|frag/);
  });

  it('does not follow a redirect (the key would go along)', async () => {
    const other = await startChatCompletionsServer([{ kind: 'answer', content: 'stolen' }]);
    try {
      server.script([
        { kind: 'status', status: 307, body: '', headers: { location: `${other.url}/chat/completions` } },
      ]);
      const err = await rejection(createOpenAiLlm({ url: server.url, model: 'm', apiKey: key }).complete(request));
      assert.match(err.message, /redirect \(307\); redirects are not followed/);
      assert.equal(other.requests.length, 0);
    } finally {
      await other.close();
    }
  });
});
