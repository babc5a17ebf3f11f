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
 * Encrypts function environments and secret values before they reach a metadata store, and fingerprints content
 * with a keyed hash so that a stored or displayed hash cannot be used to guess a secret offline. The function (or
 * secret) name is bound to each sealed value (additional authenticated data): a value copied into another row does
 * not open.
 */
export class EnvSealer {
  /** One subkey per use, derived from the stored (or shared) secret: encryption and keyed hashing never share one. */
  readonly #key: Buffer;
  readonly #secretKey: Buffer;
  readonly #hashKey: Buffer;

  private constructor(secret: Buffer) {
    this.#key = subkey(secret, 'function environments v1');
    this.#secretKey = subkey(secret, 'secrets v1');
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
   * A sealer on a key given as text (`SAVASSAN_SECRET_KEY`): 32 bytes as 64 hex digits or in base64 (44
   * characters). INVALID_CONFIG otherwise, without quoting the text.
   */
  static fromKeyText(text: string): EnvSealer {
    const trimmed = text.trim();
    let key: Buffer | null = null;
    if (/^[0-9a-fA-F]{64}$/.test(trimmed)) key = Buffer.from(trimmed, 'hex');
    else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(trimmed)) key = Buffer.from(trimmed, 'base64');
    if (key?.byteLength !== keyBytes) {
      throw new PlatformError(
        'INVALID_CONFIG',
        `SAVASSAN_SECRET_KEY must be ${keyBytes} bytes as 64 hex digits or base64 (make one with: openssl rand -hex 32)`,
      );
    }
    return new EnvSealer(key);
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
    return this.#seal(this.#key, envAad(functionName), plaintext);
  }

  open(functionName: string, sealed: string): string {
    return this.#open(this.#key, envAad(functionName), sealed, `the stored environment of ${functionName}`);
  }

  /** Seal a secret's value, bound to its name: a value copied into another secret's row (or a function's) does not open. */
  sealSecret(name: string, value: string): string {
    return this.#seal(this.#secretKey, secretAad(name), value);
  }

  openSecret(name: string, sealed: string): string {
    return this.#open(this.#secretKey, secretAad(name), sealed, `the stored value of secret ${name}`);
  }

  #seal(key: Buffer, aad: Buffer, plaintext: string): string {
    const iv = randomBytes(ivBytes);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(aad);
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return sealedPrefix + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
  }

  #open(key: Buffer, aad: Buffer, sealed: string, what: string): string {
    const raw = Buffer.from(sealed.slice(sealedPrefix.length), 'base64url');
    if (!EnvSealer.isSealed(sealed) || raw.byteLength < ivBytes + tagBytes) {
      throw new PlatformError('INTERNAL', `${what} is malformed`);
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, ivBytes));
      decipher.setAAD(aad);
      decipher.setAuthTag(raw.subarray(ivBytes, ivBytes + tagBytes));
      return Buffer.concat([decipher.update(raw.subarray(ivBytes + tagBytes)), decipher.final()]).toString('utf8');
    } catch (err) {
      throw new PlatformError(
        'UNAVAILABLE',
        `${what} cannot be decrypted: this server's key differs from the one it was sealed with (another data ` +
          'dir, SAVASSAN_SECRET_KEY or cluster token)',
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

function envAad(functionName: string): Buffer {
  return Buffer.from(`savassan env v1\0${functionName}`, 'utf8');
}

function secretAad(name: string): Buffer {
  return Buffer.from(`savassan secret v1\0${name}`, 'utf8');
}
