import type SharpDefault from 'sharp';
import { PlatformError } from '../../core/errors.js';

/**
 * Images over this many pixels are refused before they are decoded (sharp's `limitInputPixels`). Turning an image
 * upright by its EXIF orientation decodes it whole: at 25 MP that is up to about 100 MB (RGBA) per decode.
 */
export const maxImagePixels = 25_000_000;
/** Decodes running at once in this process; more wait their turn (each may hold `maxImagePixels` pixels). */
export const maxConcurrentDecodes = 2;

let decodeSlots = maxConcurrentDecodes;
const decodeQueue: (() => void)[] = [];
const load = { running: 0, waiting: 0, peakRunning: 0, peakWaiting: 0 };

/** Decodes running and waiting now, and the most of each at once since the process started. */
export function decodeLoad(): Readonly<typeof load> {
  return { ...load };
}

async function withDecodeSlot<T>(work: () => Promise<T>): Promise<T> {
  if (decodeSlots > 0) decodeSlots--;
  else {
    load.peakWaiting = Math.max(load.peakWaiting, ++load.waiting);
    await new Promise<void>((resolve) => decodeQueue.push(resolve));
    load.waiting--;
  }
  load.peakRunning = Math.max(load.peakRunning, ++load.running);
  try {
    return await work();
  } finally {
    load.running--;
    const next = decodeQueue.shift();
    if (next !== undefined) next();
    else decodeSlots++;
  }
}

type Sharp = typeof SharpDefault;

let sharpModule: Promise<Sharp> | undefined;

/** sharp, imported on first use so a platform that never decodes an image never loads libvips. */
export function loadSharp(): Promise<Sharp> {
  const loading =
    sharpModule ??
    import('sharp').then(
      (module) => module.default,
      (err: unknown) => {
        sharpModule = undefined; // try again next time
        throw new PlatformError('UNAVAILABLE', `cannot load sharp to decode images: ${firstLine(err)}`, {
          cause: err,
        });
      },
    );
  sharpModule = loading;
  return loading;
}

/** Raw pixels: `width × height` pixels of 3 bytes (R, G, B), row by row. */
export interface RgbImage {
  data: Buffer;
  width: number;
  height: number;
}

export interface DecodeOptions {
  width: number;
  height: number;
  /**
   * How the image meets the size: `fill` stretches (default), `cover` crops the overflow around the centre,
   * `contain` letterboxes on `background`.
   */
  fit?: 'fill' | 'cover' | 'contain';
  /** What transparency is flattened onto, and the letterbox colour (default white). */
  background?: string;
}

/**
 * Decode image file bytes (JPEG, PNG, WebP, GIF: its first frame, TIFF, AVIF) into sRGB pixels at a fixed size,
 * turned upright by their EXIF orientation, transparency flattened. A file that is not an image, is corrupt or has
 * more than `maxImagePixels` pixels is a BAD_REQUEST saying so (one line, fit for a per-file error). At most
 * `maxConcurrentDecodes` run at once in the process; the others wait.
 */
export async function decodeRgb(bytes: Uint8Array, options: DecodeOptions): Promise<RgbImage> {
  const sharp = await loadSharp();
  try {
    const { data, info } = await withDecodeSlot(() =>
      sharp(bytes, { limitInputPixels: maxImagePixels, failOn: 'error' })
        .rotate()
        .flatten({ background: options.background ?? '#ffffff' })
        .toColourspace('srgb')
        .resize(options.width, options.height, {
          fit: options.fit ?? 'fill',
          background: options.background ?? '#ffffff',
        })
        .removeAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true }),
    );
    if (info.channels !== 3 || data.length !== options.width * options.height * 3) {
      throw new Error(`decoded to ${info.channels} channels at ${info.width}x${info.height}`);
    }
    return { data, width: info.width, height: info.height };
  } catch (err) {
    throw new PlatformError('BAD_REQUEST', describeDecodeError(err), { cause: err });
  }
}

function describeDecodeError(err: unknown): string {
  const message = firstLine(err);
  if (/pixel limit/i.test(message)) return `image is larger than ${maxImagePixels / 1_000_000} megapixels`;
  if (/unsupported image format/i.test(message)) return 'not an image (unsupported or unknown format)';
  return `cannot decode image: ${message}`;
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  // libvips ends some first lines with a colon before its details on the next lines.
  return message.split('\n')[0]!.trim().replace(/:$/, '');
}
