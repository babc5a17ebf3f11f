import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileIntelligenceOptions, describeIntelligence } from './intelligence-options.js';

describe('intelligence options', () => {
  it('defaults to the rule-based planner, the pixels embedder and embedded PGlite', () => {
    const compiled = compileIntelligenceOptions();
    assert.equal(compiled.llm, 'rule-based');
    assert.equal(compiled.embedder, 'pixels');
    assert.equal(compiled.vectorStore, 'pglite');
  });

  it('names the flag a choice needs', () => {
    assert.throws(() => compileIntelligenceOptions({ llm: 'openai' }), /--llm openai needs --llm-url/);
    assert.throws(
      () => compileIntelligenceOptions({ llm: 'openai', llmUrl: 'http://127.0.0.1:1/v1' }),
      /needs --llm-model/,
    );
    assert.throws(() => compileIntelligenceOptions({ llm: 'llama-cpp' }), /needs --llm-model-path/);
    assert.throws(() => compileIntelligenceOptions({ embedder: 'onnx' }), /needs --embedding-model/);
    assert.throws(() => compileIntelligenceOptions({ vectorStore: 'postgres' }), /needs --vector-store-url/);
  });

  it('refuses settings of a choice not made, and bad values', () => {
    assert.throws(
      () => compileIntelligenceOptions({ llmUrl: 'http://127.0.0.1:1/v1' }),
      /--llm-url applies only with --llm openai/,
    );
    assert.throws(() => compileIntelligenceOptions({ embeddingModel: 'm.onnx' }), /only with --embedder onnx/);
    assert.throws(
      () => compileIntelligenceOptions({ llm: 'openai', llmUrl: 'file:///etc/passwd', llmModel: 'm' }),
      /must be http or https/,
    );
    assert.throws(
      () => compileIntelligenceOptions({ llm: 'llama-cpp', llmModelPath: 'm.gguf', llmThreads: 0 }),
      /--llm-threads/,
    );
    assert.throws(
      () => compileIntelligenceOptions({ embedder: 'onnx', embeddingModel: 'm.onnx', embeddingInputSize: 4 }),
      /--embedding-input-size/,
    );
  });

  it('says what runs, naming a server by its origin only', () => {
    assert.match(describeIntelligence(compileIntelligenceOptions()), /rule-based planner \(no model/);
    const openai = compileIntelligenceOptions({
      llm: 'openai',
      llmUrl: 'https://llm.internal:8443/v1',
      llmModel: 'qwen',
      embedder: 'onnx',
      embeddingModel: '/models/clip.onnx',
    });
    assert.equal(
      describeIntelligence(openai),
      'plans by the model qwen at https://llm.internal:8443 (OpenAI-compatible); images embedded by the ONNX model clip.onnx; vectors in PGlite under DATA_DIR/vectors',
    );
  });
});
