// The planner factory: flags checked once (INVALID_CONFIG naming the flag), the rule-based default, and the real
// adapters built from the flags.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from '../../core/errors.js';
import { createLlamaCppLlm } from '../../adapters/llama-cpp/llama-cpp-llm.js';
import { createOpenAiLlm } from '../../adapters/openai/openai-llm.js';
import { startChatCompletionsServer } from '../../../test/helpers/chat-completions-server.js';
import { compileLlmOptions, createLlm } from './create-llm.js';

const factories = { openai: createOpenAiLlm, llamaCpp: createLlamaCppLlm };

describe('createLlm', () => {
  it('is the rule-based planner (null) by default', async () => {
    assert.equal(await createLlm({}, factories), null);
    assert.equal(await createLlm({ llm: 'rule-based' }, factories), null);
  });

  it('refuses bad flags naming them', () => {
    const refused = (options: Parameters<typeof compileLlmOptions>[0], pattern: RegExp) =>
      assert.throws(
        () => compileLlmOptions(options),
        (err) => isPlatformError(err, 'INVALID_CONFIG') && pattern.test(err.message),
      );
    refused({ llm: 'gpt' }, /--llm must be one of rule-based, openai, llama-cpp/);
    refused({ llm: 'openai', llmModel: 'm' }, /needs --llm-url/);
    refused({ llm: 'openai', llmUrl: 'ftp://x', llmModel: 'm' }, /http or https/);
    refused({ llm: 'openai', llmUrl: 'http://user:pw@x/v1', llmModel: 'm' }, /must not hold credentials/);
    for (const query of ['?api-key=sk-1', '?key=sk-1', '?token=sk-1', '?api-version=1', '#sk-1']) {
      refused({ llm: 'openai', llmUrl: `http://x/v1${query}`, llmModel: 'm' }, /must not hold a query string/);
    }
    refused({ llm: 'openai', llmUrl: 'http://x/v1' }, /needs --llm-model/);
    refused({ llm: 'llama-cpp' }, /needs --llm-model-path/);
    refused({ llm: 'llama-cpp', llmModelPath: 'm.gguf', llmThreads: 0 }, /--llm-threads/);
  });

  it('defaults the threads to half the cores, at least 1', () => {
    const compiled = compileLlmOptions({ llm: 'llama-cpp', llmModelPath: 'm.gguf' });
    assert.ok(compiled.kind === 'llama-cpp' && compiled.threads >= 1);
  });

  it('builds the OpenAI-compatible adapter with the key from the options', async () => {
    const server = await startChatCompletionsServer([{ kind: 'answer', content: 'hello' }]);
    try {
      const llm = await createLlm(
        { llm: 'openai', llmUrl: `${server.url}/`, llmModel: 'served', llmApiKey: 'k-1' },
        factories,
      );
      assert.ok(llm !== null);
      assert.equal(llm.kind, 'openai-compatible');
      assert.equal(llm.model, 'served');
      assert.equal((await llm.complete({ messages: [{ role: 'user', content: 'hi' }] })).text, 'hello');
      assert.equal(server.requests[0]?.authorization, 'Bearer k-1');
      await llm.close();
    } finally {
      await server.close();
    }
  });

  it('a GGUF path that does not exist is UNAVAILABLE at start', async () => {
    await assert.rejects(
      createLlm({ llm: 'llama-cpp', llmModelPath: '/nonexistent.gguf', llmThreads: 1 }, factories),
      (err) => isPlatformError(err, 'UNAVAILABLE'),
    );
  });
});
