/** An image format told from its first bytes. */
export interface ImageType {
  /** `image/jpeg`, `image/png`... */
  contentType: string;
  /** The usual file extension, with its dot: `.jpg`, `.png`... */
  extension: string;
}

const ascii = (bytes: Uint8Array, offset: number, text: string): boolean => {
  if (bytes.length < offset + text.length) return false;
  for (let i = 0; i < text.length; i++) if (bytes[offset + i] !== text.charCodeAt(i)) return false;
  return true;
};

/**
 * The image format of `bytes` from its magic numbers (JPEG, PNG, GIF, WebP, TIFF, AVIF, HEIC, BMP), or null when
 * the bytes start like none of them. Only the first 32 bytes are read; a match says nothing about the rest.
 *
 * @example sniffImageType(await readFile('cat.png')) // { contentType: 'image/png', extension: '.png' }
 */
export function sniffImageType(bytes: Uint8Array): ImageType | null {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return { contentType: 'image/jpeg', extension: '.jpg' };
  }
  if (ascii(bytes, 0, '\x89PNG\r\n\x1a\n')) return { contentType: 'image/png', extension: '.png' };
  if (ascii(bytes, 0, 'GIF87a') || ascii(bytes, 0, 'GIF89a')) return { contentType: 'image/gif', extension: '.gif' };
  if (ascii(bytes, 0, 'RIFF') && ascii(bytes, 8, 'WEBP')) return { contentType: 'image/webp', extension: '.webp' };
  if (ascii(bytes, 0, 'II*\0') || ascii(bytes, 0, 'MM\0*')) return { contentType: 'image/tiff', extension: '.tif' };
  if (ascii(bytes, 4, 'ftyp')) {
    if (ascii(bytes, 8, 'avif') || ascii(bytes, 8, 'avis')) return { contentType: 'image/avif', extension: '.avif' };
    for (const brand of ['heic', 'heix', 'hevc', 'hevx', 'mif1', 'msf1']) {
      if (ascii(bytes, 8, brand)) return { contentType: 'image/heic', extension: '.heic' };
    }
  }
  if (ascii(bytes, 0, 'BM') && bytes.length >= 26) return { contentType: 'image/bmp', extension: '.bmp' };
  return null;
}
