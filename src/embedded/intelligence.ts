/**
 * The intelligence layer's composition: from the compiled options (`--llm`, `--embedder`, `--vector-store`) and the
 * platform's stores to the services the HTTP routes, gRPC services and workflow tasks call. The model, embedder and
 * vector store are made by factories handed in, so an adapter that loads a heavy package (`onnxruntime-node`,
 * `node-llama-cpp`, PGlite) is imported only when configured; the services are built over the metadata database's
 * `IntelligenceStore`.
 */
import { createPixelEmbedder } from '../adapters/images/pixel-embedder.js';
import { createLlamaCppLlm } from '../adapters/llama-cpp/llama-cpp-llm.js';
import { createOnnxEmbedder } from '../adapters/onnx/onnx-embedder.js';
import { createOpenAiLlm } from '../adapters/openai/openai-llm.js';
import { createPgliteVectorStore } from '../adapters/pglite/pglite-vector-store.js';
import { openPostgresVectorStore } from '../adapters/postgres/pgvector-vector-store.js';
import type { Logger } from '../core/logger.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import type { Embedder } from '../core/ports/embedder.js';
import type { IntelligenceStore } from '../core/ports/intelligence-store.js';
import type { Llm } from '../core/ports/llm.js';
import type { VectorStore } from '../core/ports/vector-store.js';
import { CurationJobs } from '../intelligence/curate/curation-jobs.js';
import { createLlm } from '../intelligence/plan/create-llm.js';
import { createPlanService } from '../intelligence/plan/plan-service.js';
import type { CurationService, IntelligenceServices, PlanService, RunService } from '../intelligence/services.js';
import type { CompiledIntelligenceOptions } from './intelligence-options.js';

/** A curation service that runs jobs in this process: it resumes the active ones and stops with the platform. */
export interface CuratorRuntime extends CurationService {
  /** Pick up the jobs a previous process left active (`IntelligenceStore.listActiveCurations`). */
  resume(): Promise<void>;
  /** Stop taking jobs and wait for the running batches (their state is in the store). */
  close(): Promise<void>;
}

/** How each part is made (the adapters and services as their modules export them). */
export interface IntelligenceFactories {
  /** The planner's model from the options, or null for the rule-based planner. */
  llm(options: CompiledIntelligenceOptions, logger: Logger): Promise<Llm | null>;
  embedder(options: CompiledIntelligenceOptions, logger: Logger): Promise<Embedder>;
  /** Vectors of the embedder's length (`dimensions`). */
  vectorStore(options: CompiledIntelligenceOptions, dimensions: number, logger: Logger): Promise<VectorStore>;
  plans(parts: { store: IntelligenceStore; llm: Llm | null; logger: Logger }): PlanService;
  curations(parts: {
    store: IntelligenceStore;
    blobStore: BlobStore;
    /** The blob store's bucket, as `s3://` URIs name it. */
    bucket: string;
    embedder: Embedder;
    vectors: VectorStore;
    logger: Logger;
  }): CuratorRuntime;
  /** The fine-tune runs (`createFineTunePipeline` with the engine's parts). */
  runs(parts: {
    store: IntelligenceStore;
    plans: PlanService;
    curations: CurationService;
    vectors: VectorStore;
    blobStore: BlobStore;
    bucket: string;
  }): RunService;
}

export interface CreateIntelligenceOptions {
  options: CompiledIntelligenceOptions;
  /** The metadata database's intelligence store (`Backends.intelligence`). */
  store: IntelligenceStore;
  blobStore: BlobStore;
  /** The blob store's bucket (the S3 store's; `savassan` for the file and memory stores). */
  bucket: string;
  logger: Logger;
  factories: IntelligenceFactories;
}

/** The services, and how to stop them with the platform. */
export interface Intelligence extends IntelligenceServices {
  /** Resume the curation jobs left active; call once the platform serves (jobs may finish at once). */
  start(): Promise<void>;
  /** Stop the curator, then close the model, embedder and vector store. Idempotent. */
  close(): Promise<void>;
}

/**
 * Build the intelligence services. A part that fails to open closes those opened before it and fails the call.
 *
 * @example
 * const intelligence = await createIntelligence({ options: compiled.intelligence, store: backends.intelligence,
 *   blobStore: backends.blobStore, logger, factories });
 * await createGatewayServer({ ..., intelligence });
 * await intelligence.start();
 */
export async function createIntelligence(input: CreateIntelligenceOptions): Promise<Intelligence> {
  const { options, store, blobStore, bucket, factories } = input;
  const logger = input.logger.child({ component: 'intelligence' });
  const opened: { close(): Promise<void> }[] = [];
  const closeOpened = async (): Promise<void> => {
    // Last opened, first closed; every part is closed even when one fails to.
    for (const part of opened.reverse()) await part.close().catch((err: unknown) => logger.warn({ err }, 'close'));
  };
  let curator: CuratorRuntime;
  let plans: PlanService;
  let runs: RunService;
  try {
    const llm = await factories.llm(options, logger);
    if (llm !== null) opened.push(llm);
    const embedder = await factories.embedder(options, logger);
    opened.push(embedder);
    const vectors = await factories.vectorStore(options, embedder.dimensions, logger);
    opened.push(vectors);
    plans = factories.plans({ store, llm, logger });
    curator = factories.curations({ store, blobStore, bucket, embedder, vectors, logger });
    opened.push(curator);
    runs = factories.runs({ store, plans, curations: curator, vectors, blobStore, bucket });
  } catch (err) {
    await closeOpened();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    plans,
    curations: curator,
    runs,
    start: () => curator.resume(),
    close() {
      closing ??= closeOpened();
      return closing;
    },
  };
}

/**
 * The platform's parts: the model `--llm` names (none for the rule-based planner), the embedder of `--embedder`, the
 * vector store of `--vector-store` (PGlite under `<dataDir>/vectors`, opened on first use, or a PostgreSQL server
 * checked now), the plan service and the curator. The heavy packages load inside the adapters' factories, so only
 * what is configured is loaded. `runs` is the fine-tune pipeline's, which needs the workflow engine.
 *
 * @example
 * const factories = platformIntelligenceFactories({
 *   dataDir,
 *   runs: (parts) => createFineTunePipeline({ ...parts, backend, workflowStore, functionExists, tasks }),
 * });
 */
export function platformIntelligenceFactories(settings: {
  /** Where PGlite keeps the vectors (`<dataDir>/vectors`); absent: in memory. */
  dataDir?: string | undefined;
  runs: IntelligenceFactories['runs'];
}): IntelligenceFactories {
  return {
    llm: (options) => createLlm(options, { openai: createOpenAiLlm, llamaCpp: createLlamaCppLlm }),
    embedder: async (options) =>
      options.embedder === 'onnx'
        ? createOnnxEmbedder({
            modelPath: options.embeddingModel!,
            ...(options.embeddingInputSize === undefined ? {} : { inputSize: options.embeddingInputSize }),
            ...(options.embeddingOutput === undefined ? {} : { outputTensor: options.embeddingOutput }),
          })
        : createPixelEmbedder(),
    vectorStore: async (options, dimensions) =>
      options.vectorStore === 'postgres'
        ? openPostgresVectorStore(options.vectorStoreUrl!, { dimensions })
        : createPgliteVectorStore({
            dimensions,
            ...(settings.dataDir === undefined ? {} : { dataDir: settings.dataDir }),
          }),
    plans: ({ store, llm, logger }) => createPlanService({ store, llm, logger }),
    curations: ({ store, blobStore, bucket, embedder, vectors, logger }) =>
      new CurationJobs({ store, blobs: blobStore, bucket, embedder, vectors, logger }),
    runs: settings.runs,
  };
}
