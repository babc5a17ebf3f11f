// The GGUF adapter with a real (tiny) model, stories260K: the grammar from the plan's schema makes it emit JSON of the
// schema's shape, and calls queue one at a time. Skipped when the model file is absent.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isPlatformError } from '../../core/errors.js';
import { planJsonSchema } from '../../core/plan.js';
import type { Llm, LlmRequest } from '../../core/ports/llm.js';
import { createLlamaCppLlm } from './llama-cpp-llm.js';

const repoRoot = resolve(import.meta.dirname, '../../..');
const modelPath = resolve(repoRoot, '../shared/models/stories260K.gguf');
const skip = existsSync(modelPath) ? false : `no test model at ${modelPath}`;

describe('the llama.cpp adapter with stories260K', { skip }, () => {
  let llm: Llm;
  before(async () => {
    llm = await createLlamaCppLlm({ modelPath, threads: 1 });
  });
  after(() => llm.close());

  const request = (prompt: string): LlmRequest => ({
    // A short prompt keeps this quick on a busy CPU; the plan chain's own test sends the whole template.
    messages: [
      { role: 'system', content: 'Answer with a fine-tuning plan as JSON.' },
      { role: 'user', content: prompt },
    ],
    jsonSchema: planJsonSchema,
    maxTokens: 512,
    temperature: 0,
  });

  it('emits JSON of the schema shape under the grammar', async () => {
    assert.equal(llm.kind, 'llama-cpp');
    assert.equal(llm.model, 'stories260K.gguf');
    assert.equal(llm.constrained, true);
    const answer = await llm.complete(request('LoRA of my dog Fluffy'));
    assert.equal(answer.model, 'stories260K.gguf');
    const value = JSON.parse(answer.text) as Record<string, unknown>;
    for (const field of planJsonSchema.required) assert.ok(field in value, `${field} in ${answer.text}`);
    for (const field of Object.keys(value)) assert.ok(field in planJsonSchema.properties, field);
    assert.ok(['lora', 'dreambooth', 'full'].includes(value.tuning_type as string));
  });

  it('answers calls made at once, one after the other', async () => {
    const answers = await Promise.all([llm.complete(request('a cat')), llm.complete(request('a car'))]);
    for (const answer of answers) assert.equal(typeof JSON.parse(answer.text), 'object');
  });

  it('a call past its timeout is REQUEST_TIMEOUT; after a cancelled call the next is answered', async () => {
    const hasty = await createLlamaCppLlm({ modelPath, threads: 1, timeoutMs: 1 });
    try {
      await assert.rejects(
        hasty.complete(request('a long story about a dog')),
        (err) => isPlatformError(err, 'REQUEST_TIMEOUT') && /did not answer within 1 ms/.test(err.message),
      );
    } finally {
      await hasty.close();
    }
    // A cancelled call on the shared adapter leaves it answering the next one.
    const cancel = new AbortController();
    cancel.abort();
    await assert.rejects(llm.complete({ ...request('a dog'), signal: cancel.signal }), (err) =>
      isPlatformError(err, 'UNAVAILABLE'),
    );
    const answer = await llm.complete(request('a dog'));
    assert.equal(typeof JSON.parse(answer.text), 'object');
  });

  it('refuses calls after close; close again is a no-op', async () => {
    const other = await createLlamaCppLlm({ modelPath, threads: 1 });
    await other.close();
    await other.close();
    await assert.rejects(other.complete(request('x')), (err) => isPlatformError(err, 'UNAVAILABLE'));
  });
});

describe('the llama.cpp adapter without a model', () => {
  it('a missing file is UNAVAILABLE naming it', async () => {
    await assert.rejects(
      createLlamaCppLlm({ modelPath: '/nonexistent/model.gguf', threads: 1 }),
      (err) => isPlatformError(err, 'UNAVAILABLE') && /no GGUF model at \/nonexistent\/model\.gguf/.test(err.message),
    );
  });
});
