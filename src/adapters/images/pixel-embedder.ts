import type { EmbedResult, Embedder } from '../../core/ports/embedder.js';
import { PlatformError } from '../../core/errors.js';
import { decodeRgb, loadSharp } from './image-decode.js';

/** The image is read at this size (stretched to fill it) to compute both parts of the vector. */
const side = 64;
/** Levels per channel of the joint colour histogram: 4 × 4 × 4 bins (0, 85, 170, 255). */
const levels = 4;
/** The colour thumbnail's side: 8 × 8 pixels of R, G, B. */
const thumb = 8;
/** How much of the vector's length each part gets (their squares sum to 1): colour a little over layout. */
const histogramWeight = Math.sqrt(0.6);
const thumbnailWeight = Math.sqrt(0.4);

export interface PixelEmbedderOptions {
  /** Images decoded at once (default 4); sharp runs each on its own thread pool. */
  concurrency?: number;
}

/**
 * The default `Embedder` (`pixels-v1`): cheap and honest, with **no semantics: colour and layout only**. Each image
 * is decoded with sharp at 64 × 64 and described by
 * - its joint RGB histogram (4 levels per channel, soft-binned, 64 bins, square roots of the pixel shares), and
 * - an 8 × 8 colour thumbnail less the image's mean colour (192 values), so layout counts as well as colour;
 * each part L2-normalised, weighted 0.6 : 0.4 (squared), and the whole L2-normalised: 256 dimensions.
 *
 * Re-encoded or slightly shifted copies of an image land very near it (cosine distance well under 0.02); pictures
 * of the same subject in different colours do not. For meaning, configure an ONNX model instead.
 */
export class PixelEmbedder implements Embedder {
  readonly id = 'pixels-v1';
  readonly dimensions = levels ** 3 + thumb * thumb * 3;
  readonly #concurrency: number;
  #closed = false;

  constructor(options: PixelEmbedderOptions = {}) {
    const concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1) {
      throw new PlatformError('BAD_REQUEST', `embedder concurrency must be a positive integer, got ${concurrency}`);
    }
    this.#concurrency = concurrency;
  }

  async embed(images: readonly Uint8Array[]): Promise<EmbedResult[]> {
    if (this.#closed) throw new PlatformError('UNAVAILABLE', 'cannot embed images: the embedder is closed');
    await loadSharp(); // a missing sharp fails the batch (the backend), not each image
    const results: EmbedResult[] = new Array<EmbedResult>(images.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < images.length) {
        const index = next++;
        results[index] = await this.#embedOne(images[index]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#concurrency, images.length) }, worker));
    return results;
  }

  async #embedOne(bytes: Uint8Array): Promise<EmbedResult> {
    try {
      const image = await decodeRgb(bytes, { width: side, height: side, fit: 'fill' });
      return { vector: pixelFeatures(image.data) };
    } catch (err) {
      if (err instanceof PlatformError && err.code === 'BAD_REQUEST') return { error: err.rawMessage };
      return { error: err instanceof Error ? err.message : String(err) };
    }
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}

/** The `pixels-v1` vector of a 64 × 64 RGB image (exported for tests). */
export function pixelFeatures(rgb: Uint8Array): Float32Array {
  const histogram = new Float64Array(levels ** 3);
  const cells = new Float64Array(thumb * thumb * 3);
  const cell = side / thumb;
  const low = [0, 0, 0];
  const high = [0, 0, 0];
  const upper = [0, 0, 0];
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const at = (y * side + x) * 3;
      const c = (Math.floor(y / cell) * thumb + Math.floor(x / cell)) * 3;
      for (let ch = 0; ch < 3; ch++) {
        const value = rgb[at + ch]!;
        cells[c + ch]! += value;
        // Soft binning: a value between two levels counts towards both, so noise near a level's edge (JPEG) moves
        // the vector a little, not a whole bin's worth.
        const position = (value / 255) * (levels - 1);
        low[ch] = Math.min(Math.floor(position), levels - 2);
        upper[ch] = position - low[ch]!;
        high[ch] = 1 - upper[ch]!;
      }
      for (let r = 0; r < 2; r++) {
        const wr = r === 0 ? high[0]! : upper[0]!;
        if (wr === 0) continue;
        for (let g = 0; g < 2; g++) {
          const wg = g === 0 ? high[1]! : upper[1]!;
          if (wg === 0) continue;
          for (let b = 0; b < 2; b++) {
            const wb = b === 0 ? high[2]! : upper[2]!;
            if (wb === 0) continue;
            const bin = (low[0]! + r) * levels * levels + (low[1]! + g) * levels + (low[2]! + b);
            histogram[bin]! += wr * wg * wb;
          }
        }
      }
    }
  }
  for (let i = 0; i < histogram.length; i++) histogram[i] = Math.sqrt(histogram[i]! / (side * side));
  // The thumbnail around the image's mean colour: layout, with the colour itself left to the histogram.
  const perCell = cell * cell * 255;
  const mean = [0, 0, 0];
  for (let i = 0; i < cells.length; i++) {
    cells[i] = cells[i]! / perCell;
    mean[i % 3]! += cells[i]! / (thumb * thumb);
  }
  for (let i = 0; i < cells.length; i++) cells[i] = cells[i]! - mean[i % 3]!;
  const out = new Float32Array(histogram.length + cells.length);
  writeScaled(out, 0, histogram, histogramWeight);
  writeScaled(out, histogram.length, cells, thumbnailWeight);
  return l2Normalise(out);
}

function writeScaled(out: Float32Array, offset: number, part: Float64Array, weight: number): void {
  let sum = 0;
  for (const value of part) sum += value * value;
  const scale = sum === 0 ? 0 : weight / Math.sqrt(sum);
  for (let i = 0; i < part.length; i++) out[offset + i] = part[i]! * scale;
}

function l2Normalise(vector: Float32Array): Float32Array {
  let sum = 0;
  for (const value of vector) sum += value * value;
  if (sum === 0) return vector;
  const scale = 1 / Math.sqrt(sum);
  for (let i = 0; i < vector.length; i++) vector[i]! *= scale;
  return vector;
}

/** The default embedder: `createPixelEmbedder()` is what `--embedder pixels` configures. */
export function createPixelEmbedder(options: PixelEmbedderOptions = {}): Embedder {
  return new PixelEmbedder(options);
}
