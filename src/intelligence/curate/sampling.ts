import type { ImageForFeedback } from '../../core/curation.js';
import { seededRandom } from '../../core/seeded-random.js';

/** An embedded image as sampling sees it. */
export interface SampleItem {
  id: string;
  /** Its file name (duplicates keep the first by name). */
  name: string;
  /** L2-normalised. */
  vector: Float32Array;
}

export interface SamplingOptions {
  /** Images nearer than this (cosine distance) to an image kept before them are duplicates (default 0.02). */
  duplicateDistance?: number;
  /** Images offered for feedback at most (default 24). */
  maxFeedback?: number;
  /** Share of the images offered as outliers, and as uncertain ones (default 0.05 each, at least 1). */
  outlierShare?: number;
  /** Seed of k-means++ (default 1): the same images and seed give the same sample. */
  seed?: number;
}

export const defaultSampling = { duplicateDistance: 0.02, maxFeedback: 24, outlierShare: 0.05, seed: 1 } as const;

export interface Duplicate {
  id: string;
  name: string;
  /** The kept image it duplicates. */
  of: string;
}

export interface Clustering {
  /** The cluster of each item, by position. */
  assignments: number[];
  /** Unit-length centroids. */
  centroids: Float32Array[];
}

export interface Sample {
  /** The images left after duplicate removal, sorted by name. */
  kept: SampleItem[];
  duplicates: Duplicate[];
  clustering: Clustering;
  /** The cluster of each kept image, by id. */
  clusterOf: Map<string, number>;
  /** What to show the user: every cluster's medoid first, then outliers, then uncertain images. */
  feedback: Omit<ImageForFeedback, 'uri'>[];
}

/** Cosine distance of two unit vectors. */
export function distance(a: Float32Array, b: Float32Array): number {
  // Four sums: about twice as fast as one in V8, and this is the inner loop of everything here.
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n = a.length;
  const whole = n - (n % 4);
  let i = 0;
  for (; i < whole; i += 4) {
    s0 += a[i]! * b[i]!;
    s1 += a[i + 1]! * b[i + 1]!;
    s2 += a[i + 2]! * b[i + 2]!;
    s3 += a[i + 3]! * b[i + 3]!;
  }
  for (; i < n; i++) s0 += a[i]! * b[i]!;
  return 1 - (s0 + s1 + s2 + s3);
}

/**
 * Lets other work of the process run (timers, requests) during long computations: the sampling of a large job
 * takes seconds of CPU in the platform's own process.
 */
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
/** Pairwise distances computed between two yields. */
const workPerYield = 50_000;

const byName = (a: SampleItem, b: SampleItem): number =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;

/**
 * Drop near-duplicates: images are taken in name order and one nearer than `threshold` to an image already kept is
 * a duplicate of it (of the nearest such). Exact: each image is compared with every image kept before it.
 */
export async function removeNearDuplicates(
  items: readonly SampleItem[],
  threshold: number = defaultSampling.duplicateDistance,
): Promise<{ kept: SampleItem[]; duplicates: Duplicate[] }> {
  const kept: SampleItem[] = [];
  const duplicates: Duplicate[] = [];
  let work = 0;
  for (const item of [...items].sort(byName)) {
    work += kept.length;
    if (work >= workPerYield) {
      work = 0;
      await yieldToEventLoop();
    }
    let nearest: SampleItem | null = null;
    let nearestDistance = threshold;
    for (const other of kept) {
      const d = distance(item.vector, other.vector);
      if (d < nearestDistance) {
        nearest = other;
        nearestDistance = d;
      }
    }
    if (nearest === null) kept.push(item);
    else duplicates.push({ id: item.id, name: item.name, of: nearest.id });
  }
  return { kept, duplicates };
}

/** k for `n` images: round(sqrt(n / 2)) within 1..12, and never more than n. */
export function clusterCount(n: number): number {
  return Math.max(1, Math.min(12, Math.round(Math.sqrt(n / 2)), n));
}

/**
 * Spherical k-means (cosine distance, unit centroids) seeded by k-means++ with a seeded PRNG: deterministic for the
 * same vectors in the same order. Lloyd iterations until no image moves (at most `maxIterations`); a cluster left
 * empty takes the image farthest from its centroid. `restarts` seedings are tried and the tightest result kept
 * (least total distance to the centroids), which makes a poor first seeding matter less.
 */
export async function kMeans(
  vectors: readonly Float32Array[],
  k: number,
  seed: number,
  options: { maxIterations?: number; restarts?: number } = {},
): Promise<Clustering> {
  const random = seededRandom(seed);
  let best: Clustering | null = null;
  let bestCost = Infinity;
  for (let attempt = 0; attempt < (options.restarts ?? 3); attempt++) {
    const result = await lloyd(vectors, k, random, options.maxIterations ?? 40);
    let cost = 0;
    for (let i = 0; i < vectors.length; i++) cost += distance(vectors[i]!, result.centroids[result.assignments[i]!]!);
    if (cost < bestCost - 1e-9 || best === null) [best, bestCost] = [result, cost];
  }
  return best!;
}

async function lloyd(
  vectors: readonly Float32Array[],
  k: number,
  random: () => number,
  maxIterations: number,
): Promise<Clustering> {
  const n = vectors.length;
  if (n === 0) return { assignments: [], centroids: [] };
  k = Math.max(1, Math.min(k, n));
  const dims = vectors[0]!.length;
  // k-means++: the first centre at random, each next one with probability proportional to squared distance.
  const centroids: Float32Array[] = [Float32Array.from(vectors[Math.floor(random() * n)]!)];
  const nearest = vectors.map((v) => distance(v, centroids[0]!));
  while (centroids.length < k) {
    const weights = nearest.map((d) => Math.max(d, 0) ** 2);
    const total = weights.reduce((a, b) => a + b, 0);
    let pick = 0;
    if (total > 0) {
      let target = random() * total;
      for (pick = 0; pick < n - 1; pick++) {
        target -= weights[pick]!;
        if (target < 0) break;
      }
    } else {
      pick = centroids.length; // all points coincide with a centre: any distinct index will do
    }
    const centre = Float32Array.from(vectors[pick]!);
    centroids.push(centre);
    for (let i = 0; i < n; i++) nearest[i] = Math.min(nearest[i]!, distance(vectors[i]!, centre));
  }
  const assignments = new Array<number>(n).fill(-1);
  for (let iteration = 0; iteration < maxIterations; iteration++) {
    if (n * k >= workPerYield / 10) await yieldToEventLoop();
    let moved = false;
    for (let i = 0; i < n; i++) {
      const best = nearestCentroid(vectors[i]!, centroids).index;
      if (best !== assignments[i]) {
        assignments[i] = best;
        moved = true;
      }
    }
    if (!moved) break;
    const sums = centroids.map(() => new Float64Array(dims));
    const sizes = new Array<number>(k).fill(0);
    for (let i = 0; i < n; i++) {
      const sum = sums[assignments[i]!]!;
      const v = vectors[i]!;
      for (let j = 0; j < dims; j++) sum[j]! += v[j]!;
      sizes[assignments[i]!]!++;
    }
    for (let c = 0; c < k; c++) {
      if (sizes[c] === 0) {
        // Re-seed an empty cluster with the image worst served by its own centroid.
        let worst = 0;
        let worstDistance = -Infinity;
        for (let i = 0; i < n; i++) {
          const d = distance(vectors[i]!, centroids[assignments[i]!]!);
          if (d > worstDistance) [worst, worstDistance] = [i, d];
        }
        centroids[c] = Float32Array.from(vectors[worst]!);
        assignments[worst] = c;
        continue;
      }
      centroids[c] = unit(sums[c]!);
    }
  }
  return { assignments, centroids };
}

/** The nearest centroid's index and distance, and the second nearest's distance (Infinity with one centroid). */
export function nearestCentroid(
  vector: Float32Array,
  centroids: readonly Float32Array[],
): { index: number; distance: number; second: number } {
  let index = 0;
  let best = Infinity;
  let second = Infinity;
  for (let c = 0; c < centroids.length; c++) {
    const d = distance(vector, centroids[c]!);
    if (d < best) {
      second = best;
      best = d;
      index = c;
    } else if (d < second) {
      second = d;
    }
  }
  return { index, distance: best, second };
}

/**
 * The sample offered for feedback: duplicates removed, k-means++ with k = `clusterCount(n)`, then every cluster's
 * medoid (`cluster`), the images farthest from their centroid (`outlier`, the top `outlierShare`), and those with
 * the smallest margin between their two nearest centroids (`uncertain`, as many), at most `maxFeedback` in all with
 * every cluster represented. No image is offered twice.
 */
export async function sampleForFeedback(items: readonly SampleItem[], options: SamplingOptions = {}): Promise<Sample> {
  const settings = { ...defaultSampling, ...options };
  const { kept, duplicates } = await removeNearDuplicates(items, settings.duplicateDistance);
  const vectors = kept.map((item) => item.vector);
  const clustering = await kMeans(vectors, clusterCount(kept.length), settings.seed);
  const clusterOf = new Map(kept.map((item, i) => [item.id, clustering.assignments[i]!]));
  const feedback: Omit<ImageForFeedback, 'uri'>[] = [];
  const chosen = new Set<string>();
  const offer = (index: number, reason: ImageForFeedback['reason']): void => {
    const item = kept[index]!;
    if (chosen.has(item.id) || feedback.length >= settings.maxFeedback) return;
    chosen.add(item.id);
    feedback.push({ imageId: item.id, reason, cluster: clustering.assignments[index]! });
  };
  for (let c = 0; c < clustering.centroids.length; c++) {
    const members = kept.flatMap((_, i) => (clustering.assignments[i] === c ? [i] : []));
    const medoid = medoidOf(members, vectors, clustering.centroids[c]!);
    if (medoid !== null) offer(medoid, 'cluster');
  }
  const share = Math.max(1, Math.ceil(kept.length * settings.outlierShare));
  const left = Math.max(0, settings.maxFeedback - feedback.length);
  const outlierCount = Math.min(share, Math.ceil(left / 2));
  const fit = kept.map((item, i) => {
    const near = nearestCentroid(item.vector, clustering.centroids);
    return {
      i,
      own: distance(item.vector, clustering.centroids[clustering.assignments[i]!]!),
      margin: near.second - near.distance,
    };
  });
  const byOwn = [...fit].sort((a, b) => b.own - a.own || a.i - b.i);
  let offered = 0;
  for (const { i } of byOwn) {
    if (offered >= outlierCount) break;
    if (!chosen.has(kept[i]!.id)) {
      offer(i, 'outlier');
      offered++;
    }
  }
  if (clustering.centroids.length > 1) {
    const byMargin = [...fit].sort((a, b) => a.margin - b.margin || a.i - b.i);
    offered = 0;
    for (const { i } of byMargin) {
      if (offered >= share) break;
      if (!chosen.has(kept[i]!.id)) {
        offer(i, 'uncertain');
        offered++;
      }
    }
  }
  return { kept, duplicates, clustering, clusterOf, feedback };
}

/** The member with the least total distance to the others (exact up to 1000 members; beyond, the one nearest the centroid). */
function medoidOf(members: readonly number[], vectors: readonly Float32Array[], centroid: Float32Array): number | null {
  if (members.length === 0) return null;
  let best = members[0]!;
  let bestScore = Infinity;
  const exact = members.length <= 1000;
  for (const i of members) {
    let score = 0;
    if (exact) for (const j of members) score += distance(vectors[i]!, vectors[j]!);
    else score = distance(vectors[i]!, centroid);
    if (score < bestScore) [best, bestScore] = [i, score];
  }
  return best;
}

function unit(sum: Float64Array): Float32Array {
  let length = 0;
  for (const value of sum) length += value * value;
  length = Math.sqrt(length);
  const out = new Float32Array(sum.length);
  if (length === 0) return out;
  for (let i = 0; i < sum.length; i++) out[i] = sum[i]! / length;
  return out;
}
