/**
 * How the intelligence layer is configured, for `savassan start` (and a cluster's gateways): which planner answers
 * `/v1/plans` (`--llm`), which embedder the curator uses (`--embedder`) and where vectors are kept
 * (`--vector-store`). Secrets (the LLM's API key, a vector-store URL with a password) come from the environment only.
 */
import { basename } from 'node:path';
import { PlatformError } from '../core/errors.js';
import { compileLlmOptions } from '../intelligence/plan/create-llm.js';

export type LlmKind = 'rule-based' | 'openai' | 'llama-cpp';
export type EmbedderKind = 'pixels' | 'onnx';
export type VectorStoreKind = 'pglite' | 'postgres';

export interface IntelligenceOptions {
  /** The planner: `rule-based` (default, no model), `openai` (any OpenAI-compatible server), `llama-cpp` (GGUF). */
  llm?: LlmKind | undefined;
  /** `--llm-url`: the OpenAI-compatible base URL, e.g. `http://127.0.0.1:8000/v1` (required with `openai`). */
  llmUrl?: string | undefined;
  /** `--llm-model`: the model name the server knows (required with `openai`). */
  llmModel?: string | undefined;
  /** From `SAVASSAN_LLM_API_KEY`: sent as a bearer token. */
  llmApiKey?: string | undefined;
  /** `--llm-model-path`: a GGUF file (required with `llama-cpp`). */
  llmModelPath?: string | undefined;
  /** `--llm-threads`: CPU threads for the GGUF model (default: half the cores, at least 1). */
  llmThreads?: number | undefined;
  /** `pixels` (default: colour and layout features, no model) or `onnx` (an image model file). */
  embedder?: EmbedderKind | undefined;
  /** `--embedding-model`: the ONNX file (required with `onnx`). */
  embeddingModel?: string | undefined;
  /** `--embedding-output`: a tensor of the model to take as the embedding (default: the model's first output). */
  embeddingOutput?: string | undefined;
  /** `--embedding-input-size`: the square input the model takes, in pixels (default 224). */
  embeddingInputSize?: number | undefined;
  /** `pglite` (default: embedded, under the data directory) or `postgres` (a server with the pgvector extension). */
  vectorStore?: VectorStoreKind | undefined;
  /** The PostgreSQL URL with `postgres` (`--vector-store-url` or `SAVASSAN_VECTOR_STORE_URL`). */
  vectorStoreUrl?: string | undefined;
}

export type CompiledIntelligenceOptions = Required<Pick<IntelligenceOptions, 'llm' | 'embedder' | 'vectorStore'>> &
  Omit<IntelligenceOptions, 'llm' | 'embedder' | 'vectorStore'>;

function invalid(message: string): never {
  throw new PlatformError('INVALID_CONFIG', message);
}

function only(given: Record<string, unknown>, kind: string, flag: string): void {
  const names = Object.entries(given)
    .filter(([, value]) => value !== undefined)
    .map(([name]) => name);
  if (names.length > 0) {
    invalid(`${names.join(', ')} ${names.length === 1 ? 'applies' : 'apply'} only with ${flag} ${kind}`);
  }
}

/** Validate and default once, at the edge: INVALID_CONFIG naming the flag. */
export function compileIntelligenceOptions(options: IntelligenceOptions = {}): CompiledIntelligenceOptions {
  const llm = options.llm ?? 'rule-based';
  const embedder = options.embedder ?? 'pixels';
  const vectorStore = options.vectorStore ?? 'pglite';
  if (!['rule-based', 'openai', 'llama-cpp'].includes(llm)) invalid(`--llm must be rule-based, openai or llama-cpp`);
  if (!['pixels', 'onnx'].includes(embedder)) invalid(`--embedder must be pixels or onnx`);
  if (!['pglite', 'postgres'].includes(vectorStore)) invalid(`--vector-store must be pglite or postgres`);
  if (llm !== 'openai') only({ '--llm-url': options.llmUrl, '--llm-model': options.llmModel }, 'openai', '--llm');
  if (llm !== 'llama-cpp') {
    only({ '--llm-model-path': options.llmModelPath, '--llm-threads': options.llmThreads }, 'llama-cpp', '--llm');
  }
  // The planner's own checks (URL, model, threads...), run once here so that a bad flag stops the start.
  compileLlmOptions(options);
  if (embedder !== 'onnx') {
    only(
      {
        '--embedding-model': options.embeddingModel,
        '--embedding-output': options.embeddingOutput,
        '--embedding-input-size': options.embeddingInputSize,
      },
      'onnx',
      '--embedder',
    );
  } else if ((options.embeddingModel ?? '') === '') {
    invalid('--embedder onnx needs --embedding-model FILE.onnx (an image model, e.g. a CLIP ViT image tower)');
  }
  const size = options.embeddingInputSize;
  if (size !== undefined && (!Number.isInteger(size) || size < 16 || size > 1024)) {
    invalid('--embedding-input-size must be a whole number of pixels from 16 to 1024');
  }
  if (vectorStore !== 'postgres') only({ '--vector-store-url': options.vectorStoreUrl }, 'postgres', '--vector-store');
  else if ((options.vectorStoreUrl ?? '') === '') {
    invalid('--vector-store postgres needs --vector-store-url postgres://… (or SAVASSAN_VECTOR_STORE_URL)');
  }
  return { ...options, llm, embedder, vectorStore };
}

/** What the intelligence layer runs on, in words (no secret: a URL is named by its origin only). */
export function describeIntelligence(options: CompiledIntelligenceOptions): string {
  const origin = (url: string): string => {
    try {
      return new URL(url).origin;
    } catch {
      return 'an unparsable URL';
    }
  };
  const planner =
    options.llm === 'openai'
      ? `the model ${options.llmModel ?? ''} at ${origin(options.llmUrl ?? '')} (OpenAI-compatible)`
      : options.llm === 'llama-cpp'
        ? `the GGUF model ${basename(options.llmModelPath ?? '')} on the CPU`
        : 'the rule-based planner (no model: patterns and named defaults)';
  const embedder =
    options.embedder === 'onnx'
      ? `the ONNX model ${basename(options.embeddingModel ?? '')}`
      : 'pixels-v1 (colour and layout, no model)';
  const vectors = options.vectorStore === 'postgres' ? 'PostgreSQL with pgvector' : 'PGlite under DATA_DIR/vectors';
  return `plans by ${planner}; images embedded by ${embedder}; vectors in ${vectors}`;
}
