import type SharpModule from 'sharp';

/** Images over this many pixels are refused before decoding (a decompression bomb would exhaust memory). */
export const maxInputPixels = 50_000_000;

type Sharp = typeof SharpModule;
let loading: Promise<Sharp> | undefined;

/** sharp, loaded on first use. */
function loadSharp(): Promise<Sharp> {
  return (loading ??= import('sharp').then((module) => module.default));
}

/**
 * Decode an image (JPEG, PNG, WebP, GIF, TIFF, AVIF; the first frame of an animation), turn it upright by its EXIF
 * orientation, resize it to cover a `size` x `size` square (centred crop) and return its sRGB pixels, 3 bytes each,
 * row by row. Rejects with a message fit for a per-file error when the bytes are not an image, are corrupt, or
 * exceed `maxInputPixels`.
 */
export async function decodeRgb(image: Uint8Array, size: number): Promise<Uint8Array> {
  const sharp = await loadSharp();
  try {
    const { data, info } = await sharp(image, { limitInputPixels: maxInputPixels, failOn: 'error' })
      .rotate()
      .resize(size, size, { fit: 'cover' })
      .removeAlpha()
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== size * size * 3) {
      throw new Error(`decoded to ${info.channels} channels of ${info.width}x${info.height}`);
    }
    return data;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`cannot decode the image: ${reason}`, { cause: err });
  }
}
