import { createHash } from 'node:crypto';
import { PlatformError, isPlatformError } from '../core/errors.js';
import { compileFunctionConfig, validateFunctionName } from '../core/function-config.js';
import type { FunctionConfigPatch, VersionChange } from '../core/function-config-patch.js';
import { inheritFunctionConfig, versionChanges } from '../core/function-config-patch.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import type { AgentDirectory } from '../core/ports/agent-directory.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { Pool } from '../core/ports/pool.js';
import { secretEnvOf } from '../core/secrets.js';
import type { FunctionRecord, FunctionVersion } from '../core/types.js';
import { blobKeys, poolKey } from '../core/types.js';
import type { FunctionResolver } from './function-resolver.js';

export interface DeployerOptions {
  metadata: MetadataStore;
  blobStore: BlobStore;
  pool: Pool;
  /** Used to load a new bundle once before it becomes current, and to destroy instances of deleted functions. */
  /** Where a new version's trial sandbox runs, and whose sandboxes a delete stops. */
  agents: AgentDirectory;
  resolver: FunctionResolver;
  /** Called after the current version of a function changed (deploy, rollback, delete). */
  onChange?: (name: string) => void;
  /**
   * A keyed hash (HMAC) for the environment's part of a version's content hash: the hash is stored and shown, and
   * with a plain hash a weak secret could be guessed from it offline. Plain sha256 without one.
   */
  keyedHash?: ((text: string) => string) | undefined;
  logger?: Logger;
}

export const maxCodeBytes = 50 * 1024 * 1024;

export interface DeployResult {
  function: FunctionRecord;
  version: FunctionVersion;
  created: boolean;
  /** What differs from the version that was current before (empty for a new function or an unchanged deploy). */
  changes: VersionChange[];
}

/** Deploys, rolls back and deletes functions. Every deploy is an immutable, content-addressed version. */
export class Deployer {
  readonly #logger: Logger;

  constructor(private readonly options: DeployerOptions) {
    this.#logger = (options.logger ?? silentLogger).child({ role: 'deployer' });
  }

  /**
   * Deploy `code` with the current version's settings, changed by `patch` (a field left out is kept, `null` restores
   * its default; a new function starts from the defaults). The new version gets all of the `live` alias's traffic
   * unless `promote` is false (a new function's first version gets it all the same).
   */
  async deploy(
    name: string,
    code: Uint8Array,
    patch: FunctionConfigPatch,
    options: { promote?: boolean } = {},
  ): Promise<DeployResult> {
    validateFunctionName(name);
    const { metadata } = this.options;
    const fn = await metadata.getFunction(name);
    const previous = fn === null ? null : await metadata.getVersion(name, fn.currentVersion);
    const config = compileFunctionConfig(inheritFunctionConfig(previous?.config ?? null, patch));
    if (code.byteLength === 0) throw new PlatformError('INVALID_BUNDLE', 'the code bundle is empty');
    if (code.byteLength > maxCodeBytes) {
      throw new PlatformError('PAYLOAD_TOO_LARGE', `the code bundle is ${code.byteLength} bytes, over ${maxCodeBytes}`);
    }
    // The named secrets must exist (400 naming them otherwise); the trial sandbox gets their values, as every
    // sandbox of the function will when it starts. The version stores their names only.
    const secretEnv = await secretEnvOf(this.options.metadata, name, config.secrets);
    const codeSha256 = createHash('sha256').update(code).digest('hex');
    // compileFunctionConfig fixes the key order; only env keeps the caller's order, so sort it.
    const env = JSON.stringify(Object.entries(config.env).sort(([a], [b]) => (a < b ? -1 : 1)));
    const keyedHash = this.options.keyedHash ?? ((text: string) => createHash('sha256').update(text).digest('hex'));
    // An empty allowNet or secrets is left out, so versions deployed before the setting existed keep their hash.
    // Secrets count by name: a new value of a secret is not a new version.
    const { allowNet, secrets, ...rest } = config;
    const canonical = {
      ...rest,
      ...(allowNet.length > 0 ? { allowNet } : {}),
      ...(Object.keys(secrets).length > 0 ? { secrets: Object.entries(secrets) } : {}),
      env: keyedHash(env),
    };
    const contentHash = createHash('sha256').update(codeSha256).update(JSON.stringify(canonical)).digest('hex');
    const { blobStore } = this.options;
    const key = blobKeys.code(codeSha256);
    const stored = !(await blobStore.exists(key));
    if (stored) await blobStore.put(key, code);

    // Load the bundle once in a real sandbox before it becomes current: a syntax error or a missing
    // handler is rejected here and the previous version keeps serving.
    try {
      await this.#trial(name, codeSha256, config, secretEnv);
    } catch (err) {
      // A rejected deploy leaves nothing behind: the blob it stored goes (the Agent drops the code it extracted).
      if (stored) await this.#dropCode(codeSha256, code);
      throw err;
    }

    let result;
    try {
      result = await metadata.deployVersion({
        functionName: name,
        codeSha256,
        codeSizeBytes: code.byteLength,
        contentHash,
        config,
        promote: options.promote ?? true,
      });
    } catch (err) {
      // Refused (a rollout runs, a secret went meanwhile): the blob stored for it goes, unless a version uses it.
      if (stored) await this.#dropCode(codeSha256, code);
      throw err;
    }
    // A concurrent rejected deploy of the same code may have deleted the blob after this one found it: put it back.
    if (!(await blobStore.exists(key))) await blobStore.put(key, code);
    this.#changed(name);
    this.#logger.info(
      { name, version: result.version.version, created: result.created, promoted: options.promote ?? true },
      'deployed',
    );
    const changes = result.created && previous !== null ? versionChanges(previous, result.version) : [];
    return { ...result, changes };
  }

  async #trial(
    name: string,
    codeSha256: string,
    config: FunctionVersion['config'],
    secretEnv: Record<string, string> | undefined,
  ): Promise<void> {
    // Version 0 of no incarnation: the trial sandbox is never pooled.
    const spec = { functionName: name, incarnation: '', version: 0, codeSha256, config, secretEnv };
    const agent = this.options.agents.place(spec);
    if (agent === null) {
      throw new PlatformError('UNAVAILABLE', `no node has room to try the function; deploy again in a moment`, {
        details: { retryAfterSeconds: 1 },
      });
    }
    let instanceId: string | undefined;
    try {
      const instance = await agent.createSandbox(spec);
      instanceId = instance.instanceId;
    } catch (err) {
      if (isPlatformError(err, 'FUNCTION_INIT_ERROR') || isPlatformError(err, 'INVALID_BUNDLE')) {
        throw new PlatformError('INVALID_BUNDLE', `the function failed to load: ${err.rawMessage}`, {
          cause: err,
          details: err.details,
        });
      }
      throw err;
    } finally {
      if (instanceId !== undefined) await agent.destroySandbox(instanceId);
    }
  }

  /**
   * Delete the code blob a rejected deploy stored, unless a version uses it. Deleting first and checking after
   * (putting it back when a version appeared meanwhile) pairs with `deploy`'s check after `deployVersion`: whichever
   * order a concurrent deploy of the same code runs in, a version never ends up without its blob.
   */
  async #dropCode(codeSha256: string, code: Uint8Array): Promise<void> {
    const { blobStore, metadata } = this.options;
    const key = blobKeys.code(codeSha256);
    try {
      await blobStore.delete(key);
      if (await metadata.isCodeInUse(codeSha256)) await blobStore.put(key, code);
    } catch (err) {
      this.#logger.warn({ err, key }, 'cannot clean up the code of a rejected deploy');
      // Unsure whether a version uses it: keep the blob.
      await blobStore.put(key, code).catch(() => undefined);
    }
  }

  async setCurrentVersion(name: string, version: number): Promise<FunctionRecord> {
    validateFunctionName(name);
    const fn = await this.options.metadata.setCurrentVersion(name, version);
    this.#changed(name);
    return fn;
  }

  async remove(name: string): Promise<void> {
    validateFunctionName(name);
    const { metadata, pool, agents } = this.options;
    const versions = await metadata.listVersions(name);
    if (!(await metadata.deleteFunction(name))) throw new PlatformError('NOT_FOUND', `function ${name} not found`);
    this.#changed(name);
    // Retired, not only drained: an instance busy now is refused when it comes back, and destroyed by its invoker.
    for (const v of versions) {
      const idle = await pool.retire(poolKey(v));
      await Promise.allSettled(
        idle.map((instance) => agents.get(instance.nodeId)?.destroySandbox(instance.instanceId) ?? Promise.resolve()),
      );
    }
  }

  #changed(name: string): void {
    this.options.resolver.invalidate(name);
    this.options.onChange?.(name);
  }
}
