import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import type { AgentDirectory } from '../core/ports/agent-directory.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { Pool } from '../core/ports/pool.js';
import { validateSecretName, validateSecretValue } from '../core/secrets.js';
import type { SecretListing, SecretRecord } from '../core/types.js';
import { poolKey } from '../core/types.js';

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
   * the functions using it are stopped (new ones start on demand); a busy one keeps the old value until it is
   * reaped, as an idle one after the function's `idleSeconds`.
   */
  async put(name: string, value: string): Promise<{ secret: SecretRecord; created: boolean }> {
    validateSecretName(name);
    validateSecretValue(value);
    const result = await this.#options.metadata.putSecret(name, value);
    this.#logger.info({ name, created: result.created }, result.created ? 'secret created' : 'secret updated');
    if (!result.created) await this.#restartUsersOf(name);
    return result;
  }

  list(): Promise<SecretListing[]> {
    return this.#options.metadata.listSecrets();
  }

  /** Delete a secret: NOT_FOUND when there is none, CONFLICT while a function's current version uses it. */
  async remove(name: string): Promise<void> {
    validateSecretName(name);
    if (!(await this.#options.metadata.deleteSecret(name))) {
      throw new PlatformError('NOT_FOUND', `secret ${name} not found`);
    }
    this.#logger.info({ name }, 'secret deleted');
  }

  /**
   * Stops the idle sandboxes of every version that names `name`, of the functions an alias of which serves such a
   * version (a canary's too, not only the current one); a failure leaves them to idle out.
   */
  async #restartUsersOf(name: string): Promise<void> {
    const { metadata, pool, agents } = this.#options;
    try {
      const usedBy = (await metadata.listSecrets()).find((secret) => secret.name === name)?.usedBy ?? [];
      for (const functionName of usedBy) {
        const versions = (await metadata.listVersions(functionName)).filter((v) =>
          Object.values(v.config.secrets).includes(name),
        );
        for (const version of versions) {
          const idle = await pool.drain(poolKey(version));
          await Promise.allSettled(
            idle.map(
              (instance) => agents.get(instance.nodeId)?.destroySandbox(instance.instanceId) ?? Promise.resolve(),
            ),
          );
        }
        this.#options.onChange?.(functionName);
      }
    } catch (err) {
      this.#logger.warn({ err, name }, 'cannot stop the idle sandboxes that hold the old value of a secret');
    }
  }
}
