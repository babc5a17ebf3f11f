// The intelligence layer's flags for `savassan start` and `savassan gateway`: the planner behind /v1/plans, the
// curator's embedder and vector store. The LLM's key and a vector-store URL holding a password come from the
// environment (SAVASSAN_LLM_API_KEY, SAVASSAN_VECTOR_STORE_URL), read once and dropped from it so that nothing the
// process starts inherits them; `--vector-store-url` or `--llm-url` carrying a password or a secret in its query is
// refused (src/cli/secret-args.ts).
import { Option, type Command } from 'commander';
import type { EmbedderKind, IntelligenceOptions, LlmKind, VectorStoreKind } from '../embedded/intelligence-options.js';

export interface IntelligenceFlags {
  llm: LlmKind;
  llmUrl: string | undefined;
  llmModel: string | undefined;
  llmModelPath: string | undefined;
  llmThreads: number | undefined;
  embedder: EmbedderKind;
  embeddingModel: string | undefined;
  embeddingOutput: string | undefined;
  embeddingInputSize: number | undefined;
  vectorStore: VectorStoreKind;
  vectorStoreUrl: string | undefined;
}

const llmKeyEnv = 'SAVASSAN_LLM_API_KEY';
const vectorStoreUrlEnv = 'SAVASSAN_VECTOR_STORE_URL';

function whole(value: string): number {
  const n = Number(value);
  return Number.isInteger(n) ? n : Number.NaN;
}

export function withIntelligence(command: Command): Command {
  return command
    .addOption(
      new Option(
        '--llm <kind>',
        'the planner behind /v1/plans: rule-based (no model), openai (an OpenAI-compatible server) or llama-cpp (a GGUF file)',
      )
        .choices(['rule-based', 'openai', 'llama-cpp'])
        .default('rule-based'),
    )
    .option('--llm-url <url>', `the OpenAI-compatible base URL (with --llm openai); its key: ${llmKeyEnv}`)
    .option('--llm-model <name>', 'the model the OpenAI-compatible server serves (with --llm openai)')
    .option('--llm-model-path <file>', 'a GGUF model file (with --llm llama-cpp)')
    .option('--llm-threads <n>', 'CPU threads for the GGUF model (default: half the cores)', whole)
    .addOption(
      new Option('--embedder <kind>', "the curator's image embedder: pixels (colour and layout, no model) or onnx")
        .choices(['pixels', 'onnx'])
        .default('pixels'),
    )
    .option('--embedding-model <file>', 'an ONNX image model (with --embedder onnx), e.g. a CLIP ViT image tower')
    .option('--embedding-output <tensor>', "the model's tensor taken as the embedding (default: its first output)")
    .option('--embedding-input-size <pixels>', 'the square input size the model takes (default 224)', whole)
    .addOption(
      new Option('--vector-store <kind>', 'where image vectors are kept: pglite (embedded) or postgres (pgvector)')
        .choices(['pglite', 'postgres'])
        .default('pglite'),
    )
    .addOption(
      new Option('--vector-store-url <url>', 'PostgreSQL with pgvector (with --vector-store postgres)').env(
        vectorStoreUrlEnv,
      ),
    );
}

/** The embedded or gateway option, with the secrets taken out of the environment. */
export function intelligenceFrom(opts: IntelligenceFlags): IntelligenceOptions {
  const key = process.env[llmKeyEnv];
  delete process.env[llmKeyEnv];
  delete process.env[vectorStoreUrlEnv];
  return {
    llm: opts.llm,
    llmUrl: opts.llmUrl,
    llmModel: opts.llmModel,
    llmApiKey: key,
    llmModelPath: opts.llmModelPath,
    llmThreads: opts.llmThreads,
    embedder: opts.embedder,
    embeddingModel: opts.embeddingModel,
    embeddingOutput: opts.embeddingOutput,
    embeddingInputSize: opts.embeddingInputSize,
    vectorStore: opts.vectorStore,
    vectorStoreUrl: opts.vectorStoreUrl,
  };
}
