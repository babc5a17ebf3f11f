import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import { PlatformError } from '../../core/errors.js';
import type { EmbedResult, Embedder } from '../../core/ports/embedder.js';
import { exposeTensor } from './onnx-model-patch.js';
import { decodeRgb, loadSharp } from '../images/image-decode.js';

/** Options of `createOnnxEmbedder`. */
export interface OnnxEmbedderOptions {
  /** The `.onnx` file: an image model with one input `[batch, 3, size, size]` of floats (NCHW, RGB). */
  modelPath: string;
  /** Side of the square the images are resized to (cover, centred). Default 224. */
  inputSize?: number;
  /** Per-channel (R, G, B) mean and standard deviation of pixels scaled to 0..1. Default ImageNet's. */
  mean?: readonly [number, number, number];
  std?: readonly [number, number, number];
  /**
   * The tensor whose values are the embedding (e.g. a pooled layer); exposed as a graph output in memory, a
   * quantised one through a `DequantizeLinear`. Default: the model's first output.
   */
  outputTensor?: string;
  /** ONNX Runtime's intra-op threads. Default half the cores, at least 1. */
  threads?: number;
  /** Images per inference. Default 8 (1 where the model's batch dimension is fixed at 1). */
  batch?: number;
}

/** Bounds of the numeric options. */
export const onnxEmbedderLimits = {
  inputSize: { min: 16, max: 2048, default: 224 },
  threads: { min: 1, max: 256 },
  batch: { min: 1, max: 256, default: 8 },
} as const;

const imagenetMean = [0.485, 0.456, 0.406] as const;
const imagenetStd = [0.229, 0.224, 0.225] as const;

interface CompiledOptions {
  modelPath: string;
  inputSize: number;
  mean: readonly number[];
  std: readonly number[];
  outputTensor: string | undefined;
  threads: number;
  batch: number;
}

function compileOptions(options: OnnxEmbedderOptions): CompiledOptions {
  const integer = (name: 'inputSize' | 'threads' | 'batch', value: number | undefined, fallback: number): number => {
    const limits = onnxEmbedderLimits[name];
    const chosen = value ?? fallback;
    if (!Number.isInteger(chosen) || chosen < limits.min || chosen > limits.max) {
      throw new PlatformError(
        'BAD_REQUEST',
        `ONNX embedder option ${name} must be an integer from ${limits.min} to ${limits.max}, not ${String(value)}`,
      );
    }
    return chosen;
  };
  const triple = (name: string, value: readonly number[] | undefined, fallback: readonly number[]): number[] => {
    const chosen = [...(value ?? fallback)];
    if (
      chosen.length !== 3 ||
      !chosen.every((x) => Number.isFinite(x)) ||
      (name === 'std' && chosen.some((x) => x <= 0))
    ) {
      throw new PlatformError('BAD_REQUEST', `ONNX embedder option ${name} must be three finite numbers (R, G, B)`);
    }
    return chosen;
  };
  if (options.modelPath === '') throw new PlatformError('BAD_REQUEST', 'the ONNX embedder needs a model file');
  if (options.outputTensor === '') throw new PlatformError('BAD_REQUEST', 'the output tensor name is empty');
  return {
    modelPath: options.modelPath,
    inputSize: integer('inputSize', options.inputSize, onnxEmbedderLimits.inputSize.default),
    mean: triple('mean', options.mean, imagenetMean),
    std: triple('std', options.std, imagenetStd),
    outputTensor: options.outputTensor,
    threads: integer('threads', options.threads, Math.max(1, Math.floor(availableParallelism() / 2))),
    batch: integer('batch', options.batch, onnxEmbedderLimits.batch.default),
  };
}

/** The subset of onnxruntime-node the embedder uses (loaded on creation, so its types are not imported). */
interface OrtTensor {
  readonly data: unknown;
  readonly dims: readonly number[];
}
interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly { isTensor: boolean; shape?: readonly (number | string)[] }[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
type OrtTensorConstructor = new (type: 'float32', data: Float32Array, dims: readonly number[]) => OrtTensor;

/**
 * Load an ONNX image model with ONNX Runtime (CPU) and return an `Embedder` over it. Images are decoded and resized
 * with sharp to cover the input square (bounded: at most 25 megapixels), normalised per channel, run in batches; each output row is
 * L2-normalised. An image that cannot be decoded gets an `error` of its own; the others are embedded.
 *
 * @example
 * const embedder = await createOnnxEmbedder({ modelPath: 'mobilenetv2-12-int8.onnx', outputTensor: '464' });
 * const [result] = await embedder.embed([await readFile('cat.jpg')]); // { vector: Float32Array(1280) }
 */
export async function createOnnxEmbedder(options: OnnxEmbedderOptions): Promise<OnnxEmbedder> {
  const compiled = compileOptions(options);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(compiled.modelPath);
  } catch (err) {
    throw new PlatformError('BAD_REQUEST', `cannot read the embedding model ${compiled.modelPath}: ${String(err)}`, {
      cause: err,
    });
  }
  let output: string | undefined;
  if (compiled.outputTensor !== undefined)
    ({ model: bytes, output } = await exposeTensor(bytes, compiled.outputTensor));
  const ort = await import('onnxruntime-node');
  let session: OrtSession;
  try {
    session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: compiled.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (err) {
    throw new PlatformError('BAD_REQUEST', `ONNX Runtime cannot load ${compiled.modelPath}: ${String(err)}`, {
      cause: err,
    });
  }
  try {
    const embedder = new OnnxEmbedder(compiled, session, ort.Tensor, output);
    await embedder.probe();
    return embedder;
  } catch (err) {
    await session.release().catch(() => undefined);
    throw err;
  }
}

export class OnnxEmbedder implements Embedder {
  readonly id: string;
  private size = 0;
  private readonly options: CompiledOptions;
  private readonly session: OrtSession;
  private readonly Tensor: OrtTensorConstructor;
  private readonly input: string;
  private readonly output: string;
  private readonly batch: number;
  private closed = false;

  constructor(options: CompiledOptions, session: OrtSession, Tensor: OrtTensorConstructor, output?: string) {
    this.options = options;
    this.session = session;
    this.Tensor = Tensor;
    const input = session.inputNames[0];
    const firstOutput = output ?? session.outputNames[0];
    if (input === undefined || firstOutput === undefined) {
      throw new PlatformError('BAD_REQUEST', `the embedding model ${options.modelPath} has no input or no output`);
    }
    this.input = input;
    this.output = firstOutput;
    const shape = session.inputMetadata[0]?.shape ?? [];
    const [batchDim, channels, height, width] = shape;
    if (typeof channels === 'number' && channels !== 3) {
      throw new PlatformError('BAD_REQUEST', `the embedding model takes ${channels} channels; an RGB image has 3`);
    }
    for (const side of [height, width]) {
      if (typeof side === 'number' && side !== options.inputSize) {
        throw new PlatformError(
          'BAD_REQUEST',
          `the embedding model takes ${String(height)}x${String(width)} images: set the input size to ${side}`,
        );
      }
    }
    this.batch = typeof batchDim === 'number' ? Math.min(batchDim, options.batch) : options.batch;
    const tensor = options.outputTensor === undefined ? '' : `#${options.outputTensor}`;
    this.id = `onnx:${basename(options.modelPath)}${tensor}`;
  }

  /** Length of the vectors, learnt from one inference at creation. */
  get dimensions(): number {
    return this.size;
  }

  /** Run one blank image through the model to learn the output's length. */
  async probe(): Promise<void> {
    const { inputSize } = this.options;
    const rows = await this.infer(new Float32Array(3 * inputSize * inputSize), 1);
    const length = rows[0]?.length ?? 0;
    if (length === 0) throw new PlatformError('BAD_REQUEST', `the embedding model's output ${this.output} is empty`);
    this.size = length;
  }

  async embed(images: readonly Uint8Array[]): Promise<EmbedResult[]> {
    if (this.closed) throw new PlatformError('UNAVAILABLE', 'the ONNX embedder is closed');
    await loadSharp(); // a missing sharp fails the call (the backend), not each image
    const results: EmbedResult[] = [];
    for (let start = 0; start < images.length; start += this.batch) {
      results.push(...(await this.embedBatch(images.slice(start, start + this.batch))));
    }
    return results;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }

  private async embedBatch(images: readonly Uint8Array[]): Promise<EmbedResult[]> {
    const { inputSize, mean, std } = this.options;
    const plane = inputSize * inputSize;
    const decoded = await Promise.all(
      images.map((image) =>
        decodeRgb(image, { width: inputSize, height: inputSize, fit: 'cover' }).then(
          (rgb) => ({ pixels: rgb.data }),
          (err: unknown) => {
            // A file that is not a decodable image is its own error; anything else fails the call.
            if (err instanceof PlatformError && err.code === 'BAD_REQUEST') return { error: err.rawMessage };
            throw err;
          },
        ),
      ),
    );
    const good = decoded.flatMap((entry, index) => ('pixels' in entry ? [{ index, pixels: entry.pixels }] : []));
    const results: EmbedResult[] = decoded.map((entry) =>
      'error' in entry ? { error: entry.error } : { error: 'not embedded' },
    );
    if (good.length === 0) return results;
    // Interleaved RGB bytes to normalised planar floats (NCHW).
    const input = new Float32Array(good.length * 3 * plane);
    good.forEach(({ pixels }, n) => {
      const offset = n * 3 * plane;
      for (let c = 0; c < 3; c++) {
        const scale = 1 / (255 * (std[c] as number));
        const shift = (mean[c] as number) / (std[c] as number);
        const base = offset + c * plane;
        for (let i = 0; i < plane; i++) input[base + i] = (pixels[i * 3 + c] as number) * scale - shift;
      }
    });
    let rows: Float32Array[];
    try {
      rows = await this.infer(input, good.length);
    } catch (err) {
      const message = `the model failed on this batch: ${err instanceof Error ? err.message : String(err)}`;
      for (const { index } of good) results[index] = { error: message };
      return results;
    }
    good.forEach(({ index }, n) => {
      const row = rows[n] as Float32Array;
      results[index] = normalise(row) ?? { error: 'the model gave a zero or non-finite vector for this image' };
    });
    return results;
  }

  private async infer(input: Float32Array, count: number): Promise<Float32Array[]> {
    const { inputSize } = this.options;
    const feeds = { [this.input]: new this.Tensor('float32', input, [count, 3, inputSize, inputSize]) };
    const outputs = await this.session.run(feeds);
    const tensor = outputs[this.output];
    if (tensor === undefined || !(tensor.data instanceof Float32Array)) {
      throw new PlatformError('BAD_REQUEST', `the embedding model's output ${this.output} is not a float tensor`);
    }
    const data = tensor.data;
    const length = data.length / count;
    return Array.from({ length: count }, (_, n) => data.slice(n * length, (n + 1) * length));
  }
}

/** The row scaled to unit length, or undefined when it has none (all zeros, or a NaN). */
function normalise(row: Float32Array): { vector: Float32Array } | undefined {
  let sum = 0;
  for (const value of row) sum += value * value;
  if (!(sum > 0) || !Number.isFinite(sum)) return undefined;
  const scale = 1 / Math.sqrt(sum);
  const vector = new Float32Array(row.length);
  for (let i = 0; i < row.length; i++) vector[i] = (row[i] as number) * scale;
  return { vector };
}
