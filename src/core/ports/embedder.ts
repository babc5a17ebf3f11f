/** How one image fared: its vector, or why it could not be embedded (not an image, corrupt, too large...). */
export type EmbedResult = { vector: Float32Array } | { error: string };

/**
 * Turns images (the file bytes: JPEG, PNG, WebP, GIF, TIFF, AVIF) into L2-normalised vectors of a fixed length.
 * One bad image never fails the others: it gets an `error` in its place.
 */
export interface Embedder {
  /** How the vectors are made, e.g. `onnx:clip-vit-b32.onnx` or `pixels-v1`: vectors of different ids never mix. */
  readonly id: string;
  readonly dimensions: number;
  /** Results in the order of `images`. */
  embed(images: readonly Uint8Array[]): Promise<EmbedResult[]>;
  close(): Promise<void>;
}
