import sharp from 'sharp';
import { seededRandom } from '../../src/core/seeded-random.js';

/** One file of a synthetic image set, and what it is meant to be. */
export interface SyntheticImage {
  name: string;
  bytes: Buffer;
  /**
   * `base`: a picture of cluster `cluster`; `duplicate`: `duplicateOf` re-encoded or shifted by a pixel (its name sorts
   * after the original's); `outlier`: like no cluster; `corrupt`: an image file cut short or garbled;
   * `not-image`: text.
   */
  kind: 'base' | 'duplicate' | 'outlier' | 'corrupt' | 'not-image';
  cluster: number | null;
  duplicateOf?: string;
}

export interface SyntheticImageOptions {
  /** Clusters (1-4, default 4): red discs on white, blue squares on black, green stripes on yellow, purple bars. */
  clusters?: number;
  /** Pictures per cluster (default 8). */
  perCluster?: number;
  /** Near-duplicates: for the first `duplicates` clusters (default 2), a re-encoded and a shifted copy of picture 0. */
  duplicates?: number;
  /** Outliers (default 1): noise. */
  outliers?: number;
  /** Add a corrupt PNG, a truncated JPEG and a text file (default true). */
  broken?: boolean;
  /** Side of each image in pixels (default 96). */
  size?: number;
  /** PRNG seed for positions and sizes (default 1). */
  seed?: number;
}

/**
 * A deterministic set of small PNG/JPEG files made with sharp: clusters of shapes and colours, near-duplicates,
 * outliers, and files that are not images. Sorted by name.
 */
export async function syntheticImages(options: SyntheticImageOptions = {}): Promise<SyntheticImage[]> {
  const clusters = options.clusters ?? 4;
  const perCluster = options.perCluster ?? 8;
  const duplicates = options.duplicates ?? 2;
  const size = options.size ?? 96;
  const random = seededRandom(options.seed ?? 1);
  const out: SyntheticImage[] = [];
  for (let cluster = 0; cluster < clusters; cluster++) {
    for (let i = 0; i < perCluster; i++) {
      const svg = clusterSvg(cluster, i, size, random);
      const name = `c${cluster}-${String(i).padStart(2, '0')}`;
      const jpeg = i % 3 === 2;
      const png = await sharp(Buffer.from(svg)).png().toBuffer();
      const bytes = jpeg ? await sharp(png).jpeg({ quality: 92 }).toBuffer() : png;
      const fileName = `${name}${jpeg ? '.jpg' : '.png'}`;
      out.push({ name: fileName, bytes, kind: 'base', cluster });
      if (i === 0 && cluster < duplicates) {
        out.push({
          name: `${name}.reencoded.jpg`,
          bytes: await sharp(png).jpeg({ quality: 85 }).toBuffer(),
          kind: 'duplicate',
          cluster,
          duplicateOf: fileName,
        });
        const shifted = await sharp(png)
          .extend({ left: 1, top: 0, right: 0, bottom: 0, extendWith: 'copy' })
          .extract({ left: 0, top: 0, width: size, height: size })
          .png()
          .toBuffer();
        out.push({ name: `${name}.shifted.png`, bytes: shifted, kind: 'duplicate', cluster, duplicateOf: fileName });
      }
    }
  }
  for (let i = 0; i < (options.outliers ?? 1); i++) {
    const noise = Buffer.alloc(size * size * 3);
    for (let j = 0; j < noise.length; j++) noise[j] = Math.floor(random() * 256);
    const bytes = await sharp(noise, { raw: { width: size, height: size, channels: 3 } })
      .png()
      .toBuffer();
    out.push({ name: `outlier-${i}.png`, bytes, kind: 'outlier', cluster: null });
  }
  if (options.broken ?? true) {
    const png = await sharp(Buffer.from(clusterSvg(0, 0, size, random)))
      .png()
      .toBuffer();
    const garbled = Buffer.from(png);
    for (let j = 16; j < garbled.length; j++) garbled[j] = (garbled[j]! * 31 + 7) & 255;
    out.push({ name: 'broken-garbled.png', bytes: garbled, kind: 'corrupt', cluster: null });
    const jpeg = await sharp(png).jpeg().toBuffer();
    out.push({ name: 'broken-truncated.jpg', bytes: jpeg.subarray(0, 200), kind: 'corrupt', cluster: null });
    out.push({ name: 'readme.txt', bytes: Buffer.from('these are not pixels\n'), kind: 'not-image', cluster: null });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Picture `index` of `cluster`: its shape placed by the index on a 3 × 3 grid of positions (so no two pictures of a
 * cluster coincide) with a little random jitter, in the cluster's colours.
 */
function clusterSvg(cluster: number, index: number, size: number, random: () => number): string {
  const jitter = (span: number): number => Math.round((random() - 0.5) * 2 * span);
  const s = size;
  const c = s / 2;
  const dx = ((index % 3) - 1) * s * 0.22 + jitter(2);
  const dy = ((Math.floor(index / 3) % 3) - 1) * s * 0.22 + jitter(2);
  const grow = (Math.floor(index / 9) % 3) * s * 0.05;
  let body: string;
  switch (cluster % 4) {
    case 0: {
      const r = s * 0.2 + grow;
      body = `<rect width="${s}" height="${s}" fill="#ffffff"/><circle cx="${c + dx}" cy="${c + dy}" r="${r}" fill="#e02020"/>`;
      break;
    }
    case 1: {
      const w = s * 0.36 + grow;
      body = `<rect width="${s}" height="${s}" fill="#000000"/><rect x="${c - w / 2 + dx}" y="${c - w / 2 + dy}" width="${w}" height="${w}" fill="#2040f0"/>`;
      break;
    }
    case 2: {
      const stripe = Math.round(s / 12) + (index % 3) * 3;
      const offset = Math.floor(index / 3) * 5;
      let stripes = '';
      for (let y = offset - stripe * 2; y < s; y += stripe * 2) {
        stripes += `<rect x="0" y="${y}" width="${s}" height="${stripe}" fill="#10a040"/>`;
      }
      body = `<rect width="${s}" height="${s}" fill="#f0e040"/>${stripes}`;
      break;
    }
    default: {
      const w = s * 0.16 + grow;
      const x = ((index % 9) / 8) * (s - w) + jitter(1);
      body = `<rect width="${s}" height="${s}" fill="#808080"/><rect x="${x}" y="0" width="${w}" height="${s}" fill="#8020a0"/>`;
    }
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${s}" height="${s}" viewBox="0 0 ${s} ${s}">${body}</svg>`;
}
