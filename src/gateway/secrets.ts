import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import type { AgentDirectory } from '../core/ports/agent-directory.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { Pool } from '../core/ports/pool.js';
import { validateSecretName, validateSecretValue } from '../core/secrets.js';
import type { SecretListing, SecretRecord } from '../core/types.js';
import { parsePoolKey } from '../core/types.js';

export interface SecretsOptions {
  metadata: MetadataStore;
  pool: Pool;
  agents: AgentDirectory;
  /** Called for each function whose idle sandboxes were stopped after a secret of theirs changed. */
  onChange?: ((functionName: string) => void) | undefined;
  logger?: Logger | undefined;
}

/**
 * Sets, lists and deletes secrets. Values go into the metadata store (sealed there) and come out only into the
 * environment of a sandbox as it starts: never into an answer, a log line or an error message.
 */
export class Secrets {
  readonly #options: SecretsOptions;
  readonly #logger: Logger;

  constructor(options: SecretsOptions) {
    this.#options = options;
    this.#logger = (options.logger ?? silentLogger).child({ role: 'secrets' });
  }

  /**
   * Create a secret or give it a new value. Sandboxes started from now on get the new value: the idle sandboxes of
   * every version that names it are stopped (new ones start on demand), whether an alias serves the version or not;
   * a busy one keeps the old value until it is reaped, as an idle one after the function's `idleSeconds`.
   */
  async put(name: string, value: string): Promise<{ secret: SecretRecord; created: boolean }> {
    validateSecretName(name);
    validateSecretValue(value);
    const result = await this.#options.metadata.putSecret(name, value);
    this.#logger.info({ name, created: result.created }, result.created ? 'secret created' : 'secret updated');
    // A created one too: sandboxes may still hold the value of a deleted secret of that name.
    await this.#stopIdleUsersOf(name);
    return result;
  }

  list(): Promise<SecretListing[]> {
    return this.#options.metadata.listSecrets();
  }

  /**
   * Delete a secret: NOT_FOUND when there is none, CONFLICT while a version an alias serves (or a running rollout's)
   * names it. Versions that name it without serving (a promoted rollout's baseline, any version invoked by number)
   * lose their idle sandboxes, and cannot start new ones until the secret exists again.
   */
  async remove(name: string): Promise<void> {
    validateSecretName(name);
    if (!(await this.#options.metadata.deleteSecret(name))) {
      throw new PlatformError('NOT_FOUND', `secret ${name} not found`);
    }
    this.#logger.info({ name }, 'secret deleted');
    await this.#stopIdleUsersOf(name);
  }

  /**
   * Stops the idle sandboxes of every version that names `name` and has instances in the pool (served, retained
   * for a rollback, or invoked by number); a failure leaves them to idle out.
   */
  async #stopIdleUsersOf(name: string): Promise<void> {
    const { metadata, pool, agents } = this.#options;
    try {
      const changed = new Set<string>();
      for (const key of await pool.keys()) {
        const id = parsePoolKey(key);
        if (id === null || id.version === 0) continue;
        const version = await metadata.getVersion(id.functionName, id.version);
        if (version?.incarnation !== id.incarnation || !Object.values(version.config.secrets).includes(name)) continue;
        const idle = await pool.drain(key);
        await Promise.allSettled(
          idle.map((instance) => agents.get(instance.nodeId)?.destroySandbox(instance.instanceId) ?? Promise.resolve()),
        );
        changed.add(id.functionName);
      }
      for (const functionName of changed) this.#options.onChange?.(functionName);
    } catch (err) {
      this.#logger.warn({ err, name }, 'cannot stop the idle sandboxes that hold the old value of a secret');
    }
  }
}
