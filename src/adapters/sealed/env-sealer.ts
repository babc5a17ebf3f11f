import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PlatformError } from '../../core/errors.js';

/** Prefix of a sealed value: format version 1 is AES-256-GCM, `sv1.` + base64url(iv ‖ tag ‖ ciphertext). */
const sealedPrefix = 'sv1.';
const ivBytes = 12;
const tagBytes = 16;
const keyBytes = 32;

/**
 * Encrypts function environments before they reach a metadata store, and fingerprints content with a keyed hash so
 * that a stored or displayed hash cannot be used to guess a secret offline. The function name is bound to each
 * sealed value (additional authenticated data): a value copied into another function's row does not open.
 */
export class EnvSealer {
  /** One subkey per use, derived from the stored (or shared) secret: encryption and keyed hashing never share one. */
  readonly #key: Buffer;
  readonly #hashKey: Buffer;

  private constructor(secret: Buffer) {
    this.#key = subkey(secret, 'function environments v1');
    this.#hashKey = subkey(secret, 'content hashes v1');
  }

  /** A sealer on a 32-byte key. */
  static fromKey(key: Uint8Array): EnvSealer {
    if (key.byteLength !== keyBytes) {
      throw new PlatformError('INTERNAL', `an environment sealing key is ${keyBytes} bytes, not ${key.byteLength}`);
    }
    return new EnvSealer(Buffer.from(key));
  }

  /**
   * A sealer whose key is derived from a shared secret (the cluster token): every gateway and manager of a
   * cluster derives the same key without another secret to distribute.
   */
  static fromSecret(secret: string): EnvSealer {
    return new EnvSealer(Buffer.from(secret, 'utf8'));
  }

  /**
   * The sealer of a data dir: its key lives in `path` (0600, created with a random key on first use), so a
   * database copied away without the data dir does not reveal environments.
   */
  static async fromKeyFile(path: string): Promise<EnvSealer> {
    const existing: Buffer | null = await readFile(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    const key = existing ?? (await createKeyFile(path));
    await chmod(path, 0o600);
    if (key.byteLength !== keyBytes) {
      throw new PlatformError(
        'UNAVAILABLE',
        `the key file ${path} holds ${key.byteLength} bytes, not ${keyBytes}: it is damaged (restore it from a backup; ` +
          'without it the stored environments cannot be read)',
      );
    }
    return new EnvSealer(key);
  }

  /** Whether a stored value is sealed (values written before sealing existed are not). */
  static isSealed(value: string): boolean {
    return value.startsWith(sealedPrefix);
  }

  seal(functionName: string, plaintext: string): string {
    const iv = randomBytes(ivBytes);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(aad(functionName));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return sealedPrefix + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
  }

  open(functionName: string, sealed: string): string {
    const raw = Buffer.from(sealed.slice(sealedPrefix.length), 'base64url');
    if (!EnvSealer.isSealed(sealed) || raw.byteLength < ivBytes + tagBytes) {
      throw new PlatformError('INTERNAL', `the stored environment of ${functionName} is malformed`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, ivBytes));
      decipher.setAAD(aad(functionName));
      decipher.setAuthTag(raw.subarray(ivBytes, ivBytes + tagBytes));
      return Buffer.concat([decipher.update(raw.subarray(ivBytes + tagBytes)), decipher.final()]).toString('utf8');
    } catch (err) {
      throw new PlatformError(
        'UNAVAILABLE',
        `the stored environment of ${functionName} cannot be decrypted: this server's key differs from the one ` +
          'it was sealed with (another data dir, or another cluster token)',
        { cause: err },
      );
    }
  }

  /** A keyed hash (hex): equal texts give equal hashes, and nothing is learnt from one without the key. */
  keyedHash(text: string): string {
    return createHmac('sha256', this.#hashKey).update(text).digest('hex');
  }
}

function subkey(secret: Buffer, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', secret, 'savassan', purpose, keyBytes));
}

/**
 * A new random key at `path`, complete or not at all: written and synced under a temporary name, then linked into
 * place, so a crash never leaves a short key and a process starting at the same moment reads the winner's whole key.
 */
async function createKeyFile(path: string): Promise<Buffer> {
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const key = randomBytes(keyBytes);
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}`;
  const file = await open(temporary, 'wx', 0o600);
  try {
    await file.writeFile(key);
    await file.sync();
  } finally {
    await file.close();
  }
  try {
    await link(temporary, path);
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return readFile(path);
  } finally {
    await rm(temporary, { force: true });
  }
}

function aad(functionName: string): Buffer {
  return Buffer.from(`savassan env v1\0${functionName}`, 'utf8');
}
