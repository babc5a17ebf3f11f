/**
 * The adapters behind the intelligence layer, as `createIntelligence` takes them. Each adapter module is imported
 * only when its option picks it, so a platform on the defaults never loads onnxruntime or node-llama-cpp.
 */
import { createOpenAiLlm } from '../adapters/openai/openai-llm.js';
import type { ExecutionBackend } from '../core/ports/execution-backend.js';
import type { WorkflowStore } from '../core/ports/workflow-store.js';
import { createCurationService } from '../intelligence/curate/curation-jobs.js';
import { createLlm } from '../intelligence/plan/create-llm.js';
import { createPlanService } from '../intelligence/plan/plan-service.js';
import { createFineTunePipeline } from '../intelligence/runs.js';
import type { BuiltinTaskRunner } from '../intelligence/tasks.js';
import type { IntelligenceFactories } from './intelligence.js';

export interface IntelligenceFactoryOptions {
  /** The platform's data directory: PGlite keeps vectors in `<dataDir>/vectors`. */
  dataDir: string;
  /** The blob store's bucket as `s3://` URIs name it. */
  bucket: string;
  /** Where fine-tune runs' executions are launched and read. */
  backend: ExecutionBackend;
  workflowStore: Pick<WorkflowStore, 'getNode'>;
  functionExists: (name: string) => Promise<boolean>;
  /** The engine's built-in task runner: the fine-tune tasks are provided to it. */
  tasks: BuiltinTaskRunner;
}

/** The factories of the adapters and services this platform runs. */
export function intelligenceFactories(options: IntelligenceFactoryOptions): IntelligenceFactories {
  return {
    llm: (compiled) =>
      createLlm(compiled, {
        openai: createOpenAiLlm,
        llamaCpp: async (settings) =>
          (await import('../adapters/llama-cpp/llama-cpp-llm.js')).createLlamaCppLlm(settings),
      }),
    async embedder(compiled) {
      if (compiled.embedder === 'pixels') {
        return (await import('../adapters/images/pixel-embedder.js')).createPixelEmbedder();
      }
      const { createOnnxEmbedder } = await import('../adapters/onnx/onnx-embedder.js');
      return createOnnxEmbedder({
        modelPath: compiled.embeddingModel!,
        ...(compiled.embeddingInputSize === undefined ? {} : { inputSize: compiled.embeddingInputSize }),
        ...(compiled.embeddingOutput === undefined ? {} : { outputTensor: compiled.embeddingOutput }),
      });
    },
    async vectorStore(compiled, dimensions) {
      if (compiled.vectorStore === 'postgres') {
        const { openPostgresVectorStore } = await import('../adapters/postgres/pgvector-vector-store.js');
        return openPostgresVectorStore(compiled.vectorStoreUrl!, { dimensions });
      }
      const { createPgliteVectorStore } = await import('../adapters/pglite/pglite-vector-store.js');
      return createPgliteVectorStore({ dataDir: options.dataDir, dimensions });
    },
    plans: ({ store, llm, logger }) => createPlanService({ store, llm, logger }),
    curations: ({ store, blobStore, embedder, vectors, logger }) =>
      createCurationService({ store, blobs: blobStore, bucket: options.bucket, embedder, vectors, logger }),
    runs: ({ store, plans, curations, vectors, blobStore }) =>
      createFineTunePipeline({
        store,
        plans,
        curations,
        vectors,
        blobStore,
        bucket: options.bucket,
        backend: options.backend,
        workflowStore: options.workflowStore,
        functionExists: options.functionExists,
        tasks: options.tasks,
      }),
  };
}
