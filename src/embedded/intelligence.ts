/**
 * The intelligence layer's composition: from the compiled options (`--llm`, `--embedder`, `--vector-store`) and the
 * platform's stores to the services the HTTP routes, gRPC services and workflow tasks call. The model, embedder and
 * vector store are made by factories handed in, so an adapter that loads a heavy package (`onnxruntime-node`,
 * `node-llama-cpp`, PGlite) is imported only when configured; the services are built over the metadata database's
 * `IntelligenceStore`.
 */
import type { Logger } from '../core/logger.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import type { Embedder } from '../core/ports/embedder.js';
import type { IntelligenceStore } from '../core/ports/intelligence-store.js';
import type { Llm } from '../core/ports/llm.js';
import type { VectorStore } from '../core/ports/vector-store.js';
import type { CurationService, IntelligenceServices, PlanService, RunService } from '../intelligence/services.js';
import type { CompiledIntelligenceOptions } from './intelligence-options.js';

/** A curation service that runs jobs in this process: it resumes the active ones and stops with the platform. */
export interface CuratorRuntime extends CurationService {
  /** Pick up the jobs a previous process left active (`IntelligenceStore.listActiveCurations`). */
  resume(): Promise<void>;
  /** Stop taking jobs and wait for the running batches (their state is in the store). */
  stop(): Promise<void>;
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
    embedder: Embedder;
    vectors: VectorStore;
    logger: Logger;
  }): CuratorRuntime;
  runs(parts: { store: IntelligenceStore; plans: PlanService; curations: CurationService }): RunService;
}

export interface CreateIntelligenceOptions {
  options: CompiledIntelligenceOptions;
  /** The metadata database's intelligence store (`Backends.intelligence`). */
  store: IntelligenceStore;
  blobStore: BlobStore;
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
  const { options, store, blobStore, factories } = input;
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
    curator = factories.curations({ store, blobStore, embedder, vectors, logger });
    opened.push({ close: () => curator.stop() });
    runs = factories.runs({ store, plans, curations: curator });
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
