// The intelligence layer's hot paths, measured in-process and bounded in time:
// - embedding throughput (images/s) of each embedder available: pixels-v1 always, the ONNX MobileNetV2 test model
//   (1280-d pooled features) when ../shared/models has it;
// - vector search on the default store (PGlite + pgvector, HNSW cosine) at 10k and 100k vectors of 512 dimensions:
//   index build time, HNSW and exact-scan p50/p99 query time, recall@10 of HNSW against the exact answer, and the
//   in-memory brute-force store for scale.
// Nothing is written: the functions return their figures.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { createPixelEmbedder } from '../src/adapters/images/pixel-embedder.js';
import { MemoryVectorStore } from '../src/adapters/memory/memory-vector-store.js';
import { createOnnxEmbedder } from '../src/adapters/onnx/onnx-embedder.js';
import { pgliteVectorStoreOn } from '../src/adapters/pglite/pglite-vector-store.js';
import { compilePgvectorOptions, pgvectorLimits, vectorLiteral } from '../src/adapters/sql/pgvector-vector-store.js';
import type { Embedder } from '../src/core/ports/embedder.js';
import type { StoredVector } from '../src/core/ports/vector-store.js';
import { syntheticImages } from '../test/helpers/synthetic-images.js';
import { round, summarise } from './load.js';
import { benchPlans } from './plans.js';
import { runSectionAlone, runsAlone } from './section-alone.js';
import { seededRandom } from '../src/core/seeded-random.js';

const repoRoot = resolve(import.meta.dirname, '..');
const modelDir = resolve(repoRoot, '../shared/models');

export interface EmbeddingFigures {
  embedder: string;
  dimensions: number;
  images: number;
  /** Of `imageSize` x `imageSize` PNGs, after one warm-up call. */
  imagesPerSecond: number;
  msPerImage: number;
  options: Record<string, unknown>;
}

export interface EmbeddingBench {
  imageSize: number;
  results: EmbeddingFigures[];
  skipped: string[];
}

/**
 * Images per second through each embedder: `images` synthetic PNGs (coloured shapes) of `imageSize` pixels a side,
 * in one `embed` call after a warm-up call.
 */
export async function benchEmbeddings(
  options: { images?: number; imageSize?: number; onnxThreads?: number } = {},
): Promise<EmbeddingBench> {
  const count = options.images ?? 64;
  const imageSize = options.imageSize ?? 256;
  const perCluster = Math.ceil(count / 4);
  const images = (
    await syntheticImages({ clusters: 4, perCluster, duplicates: 0, outliers: 0, broken: false, size: imageSize })
  )
    .filter((image) => image.kind === 'base')
    .slice(0, count)
    .map((image) => image.bytes);
  const results: EmbeddingFigures[] = [];
  const skipped: string[] = [];
  const measure = async (embedder: Embedder, settings: Record<string, unknown>): Promise<void> => {
    try {
      await embedder.embed(images.slice(0, 4));
      const started = performance.now();
      const embedded = await embedder.embed(images);
      const seconds = (performance.now() - started) / 1000;
      const failed = embedded.filter((result) => 'error' in result).length;
      if (failed > 0) throw new Error(`${failed} of ${images.length} images failed`);
      results.push({
        embedder: embedder.id,
        dimensions: embedder.dimensions,
        images: images.length,
        imagesPerSecond: round(images.length / seconds, 1),
        msPerImage: round((seconds * 1000) / images.length, 2),
        options: settings,
      });
    } finally {
      await embedder.close();
    }
  };
  await measure(createPixelEmbedder(), {});
  const modelPath = resolve(modelDir, 'mobilenetv2-12-int8.onnx');
  if (existsSync(modelPath)) {
    const threads = options.onnxThreads ?? 1;
    for (const batch of [1, 8]) {
      const settings = { outputTensor: '464', threads, batch };
      await measure(await createOnnxEmbedder({ modelPath, ...settings }), settings);
    }
  } else {
    skipped.push(`onnx: no test model at ${modelPath}`);
  }
  return { imageSize, results, skipped };
}

export interface VectorSearchFigures {
  vectors: number;
  dimensions: number;
  /** Rows inserted (no index yet), through the store's batched INSERT. */
  loadMs: number;
  /** `create index ... using hnsw (embedding vector_cosine_ops)` over the loaded rows (m 16, ef_construction 64). */
  indexBuildMs: number;
  efSearch: number;
  queries: number;
  hnsw: { p50: number; p99: number };
  /** The same query with the index bypassed: an exact scan of the collection in PGlite. */
  exactScan: { p50: number; p99: number; queries: number };
  /** The in-memory exact store (JavaScript brute force). */
  memoryBruteForce: { p50: number; p99: number };
  /** Share of the exact top 10 that HNSW returned, over all queries. */
  recallAt10: number;
}

export interface VectorSearchBench {
  data: string;
  results: VectorSearchFigures[];
  skipped: string[];
}

/**
 * Vector search on the default store at each size in `sizes` (default 10,000 and 100,000) of `dimensions` (512):
 * vectors drawn around 200 cluster centres (unit Gaussian directions plus noise, as image embeddings of many
 * subjects are), queries drawn the same way. A size is skipped when the time spent so far says it would not finish
 * within `budgetMs` (default 15 minutes).
 */
export async function benchVectorSearch(
  options: {
    sizes?: number[];
    dimensions?: number;
    queries?: number;
    exactQueries?: number;
    budgetMs?: number;
    /** Called with each size's figures as they are ready (a long run shows progress). */
    onSize?: (figures: VectorSearchFigures) => void;
  } = {},
): Promise<VectorSearchBench> {
  const sizes = options.sizes ?? [10_000, 100_000];
  const dimensions = options.dimensions ?? 512;
  const queries = options.queries ?? 200;
  const exactQueries = options.exactQueries ?? 30;
  const budgetMs = options.budgetMs ?? 15 * 60_000;
  const started = performance.now();
  const results: VectorSearchFigures[] = [];
  const skipped: string[] = [];
  let msPerVector = 0;
  for (const size of sizes) {
    const spent = performance.now() - started;
    // Index build grows a little faster than linearly; 1.3x for the log factor.
    if (msPerVector > 0 && spent + msPerVector * size * 1.3 > budgetMs) {
      skipped.push(
        `${size} vectors: would take about ${Math.round((msPerVector * size * 1.3) / 1000)} s, past the budget`,
      );
      continue;
    }
    const sizeStarted = performance.now();
    const figures = await searchAtSize(size, dimensions, queries, exactQueries);
    results.push(figures);
    options.onSize?.(figures);
    msPerVector = (performance.now() - sizeStarted) / size;
  }
  return {
    data: `${dimensions}-d unit vectors around 200 cluster centres (noise 0.6 of the centre's length), seeded`,
    results,
    skipped,
  };
}

async function searchAtSize(
  size: number,
  dimensions: number,
  queryCount: number,
  exactQueries: number,
): Promise<VectorSearchFigures> {
  const random = seededRandom(size);
  const centres = Array.from({ length: 200 }, () => gaussian(dimensions, random, 1));
  const sample = (): Float32Array => {
    const centre = centres[Math.floor(random() * centres.length)] as Float32Array;
    const noise = gaussian(dimensions, random, 0.6);
    return unit(centre.map((value, i) => value + (noise[i] as number)));
  };
  const vectors: StoredVector[] = Array.from({ length: size }, (_, i) => ({
    id: `img-${i}`,
    uri: `s3://savassan/bench/${i}.png`,
    vector: sample(),
  }));
  const queries = Array.from({ length: queryCount }, sample);

  const db = await PGlite.create({ extensions: { vector } });
  const store = pgliteVectorStoreOn(db, { dimensions });
  const memory = new MemoryVectorStore(dimensions);
  try {
    const { table } = compilePgvectorOptions({ dimensions });
    await store.open();
    await db.exec(`drop index ${table}_hnsw`);
    const loadStarted = performance.now();
    await store.upsert('bench', vectors);
    const loadMs = performance.now() - loadStarted;
    await db.exec(`set maintenance_work_mem = '1GB'`);
    const buildStarted = performance.now();
    await db.exec(`create index ${table}_hnsw on ${table} using hnsw (embedding vector_cosine_ops)`);
    const indexBuildMs = performance.now() - buildStarted;
    await memory.upsert('bench', vectors);

    const exactIds: Set<string>[] = [];
    const memoryTimes: number[] = [];
    for (const query of queries) {
      const t = performance.now();
      const matches = await memory.search('bench', query, 10);
      memoryTimes.push(performance.now() - t);
      exactIds.push(new Set(matches.map((m) => m.id)));
    }
    const hnswTimes: number[] = [];
    let found = 0;
    for (const [i, query] of queries.entries()) {
      const t = performance.now();
      const matches = await store.search('bench', query, 10);
      hnswTimes.push(performance.now() - t);
      found += matches.filter((m) => exactIds[i]?.has(m.id)).length;
    }
    const exactTimes: number[] = [];
    for (const query of queries.slice(0, exactQueries)) {
      const t = performance.now();
      await db.query(
        `select id, embedding <=> $2::vector as distance from ${table}
         where project_id = $1 order by (embedding <=> $2::vector) + 0 limit 10`,
        ['bench', vectorLiteral(query)],
      );
      exactTimes.push(performance.now() - t);
    }
    const figures = (samples: number[]) => {
      const { p50, p99 } = summarise(samples);
      return { p50, p99 };
    };
    return {
      vectors: size,
      dimensions,
      loadMs: Math.round(loadMs),
      indexBuildMs: Math.round(indexBuildMs),
      efSearch: pgvectorLimits.efSearch.default,
      queries: queryCount,
      hnsw: figures(hnswTimes),
      exactScan: { ...figures(exactTimes), queries: exactTimes.length },
      memoryBruteForce: figures(memoryTimes),
      recallAt10: round(found / (queryCount * 10), 4),
    };
  } finally {
    await store.close();
    await memory.close();
    await db.close();
  }
}

/** A Gaussian vector whose expected length is `length`. */
function gaussian(dimensions: number, random: () => number, length: number): Float32Array {
  const out = new Float32Array(dimensions);
  const scale = length / Math.sqrt(dimensions);
  for (let i = 0; i < dimensions; i++) {
    out[i] = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()) * scale;
  }
  return out;
}

function unit(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const value of vector) sum += value * value;
  const scale = 1 / Math.sqrt(sum);
  return vector.map((value) => value * scale);
}

/**
 * The intelligence section of `npm run bench`: embedding throughput, vector search at 10k and 100k vectors (10k only
 * when `quick`), and plan latency per planner.
 */
export async function measureIntelligence(quick: boolean) {
  return {
    embeddings: await benchEmbeddings({ images: quick ? 32 : 64 }),
    vectorSearch: await benchVectorSearch({
      ...(quick ? { sizes: [10_000], queries: 100 } : { budgetMs: 40 * 60_000 }),
      // Each size's figures as they are ready: the 100k one takes minutes.
      onSize: (figures) => process.stderr.write(`${JSON.stringify(figures)}\n`),
    }),
    plans: await benchPlans(quick ? { requests: 100, llamaRequests: 2 } : {}),
  };
}

// Alone: `node --import tsx bench/intelligence.ts` (BENCH_QUICK=1 for the quick sizes).
if (runsAlone(import.meta.url)) {
  await runSectionAlone('intelligence', measureIntelligence);
}
