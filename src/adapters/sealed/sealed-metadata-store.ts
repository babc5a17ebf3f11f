import type { FunctionConfig } from '../../core/function-config.js';
import type { MetadataStore, NewVersion } from '../../core/ports/metadata-store.js';
import { validateSecretValue } from '../../core/secrets.js';
import type { FunctionVersion, SecretListing } from '../../core/types.js';
import type { EnvSealer } from './env-sealer.js';

/**
 * Where a sealed environment sits in a stored config: one entry whose name no environment variable can have
 * (names match `[A-Za-z_][A-Za-z0-9_]*`), so it cannot be confused with a real variable.
 */
const sealedEnvKey = '@sealed';

/**
 * A MetadataStore that keeps function environments and secret values encrypted in the store underneath (any
 * adapter: SQLite, PostgreSQL, MySQL), so neither the database nor its backups hold a secret in clear (content
 * hashes are keyed by the deployer, `EnvSealer.keyedHash`). Callers see plain configs and values. Environments stored before sealing existed are read as
 * they are and sealed when the function is next deployed.
 */
export class SealedMetadataStore implements MetadataStore {
  readonly #inner: MetadataStore;
  readonly #sealer: EnvSealer;

  constructor(inner: MetadataStore, sealer: EnvSealer) {
    this.#inner = inner;
    this.#sealer = sealer;
  }

  migrate(): Promise<void> {
    return this.#inner.migrate();
  }

  async deployVersion(input: NewVersion): ReturnType<MetadataStore['deployVersion']> {
    const result = await this.#inner.deployVersion({
      ...input,
      config: this.#sealConfig(input.functionName, input.config),
    });
    return { ...result, version: this.#openVersion(result.version) };
  }

  getFunction(name: string): ReturnType<MetadataStore['getFunction']> {
    return this.#inner.getFunction(name);
  }

  listFunctions(): ReturnType<MetadataStore['listFunctions']> {
    return this.#inner.listFunctions();
  }

  isCodeInUse(codeSha256: string): Promise<boolean> {
    return this.#inner.isCodeInUse(codeSha256);
  }

  deleteFunction(name: string): Promise<boolean> {
    return this.#inner.deleteFunction(name);
  }

  async getVersion(name: string, version: number): Promise<FunctionVersion | null> {
    const found = await this.#inner.getVersion(name, version);
    return found === null ? null : this.#openVersion(found);
  }

  async listVersions(name: string): Promise<FunctionVersion[]> {
    return (await this.#inner.listVersions(name)).map((version) => this.#openVersion(version));
  }

  setCurrentVersion(name: string, version: number): ReturnType<MetadataStore['setCurrentVersion']> {
    return this.#inner.setCurrentVersion(name, version);
  }

  recordInvocation(...args: Parameters<MetadataStore['recordInvocation']>): Promise<void> {
    return this.#inner.recordInvocation(...args);
  }

  getInvocation(id: string): ReturnType<MetadataStore['getInvocation']> {
    return this.#inner.getInvocation(id);
  }

  listInvocations(...args: Parameters<MetadataStore['listInvocations']>): ReturnType<MetadataStore['listInvocations']> {
    return this.#inner.listInvocations(...args);
  }

  invocationStats(...args: Parameters<MetadataStore['invocationStats']>): ReturnType<MetadataStore['invocationStats']> {
    return this.#inner.invocationStats(...args);
  }

  async putSecret(name: string, value: string): ReturnType<MetadataStore['putSecret']> {
    // The bounds are the value's own: sealed, it is longer than any plain value may be.
    validateSecretValue(value);
    return this.#inner.putSecret(name, this.#sealer.sealSecret(name, value));
  }

  listSecrets(): Promise<SecretListing[]> {
    return this.#inner.listSecrets();
  }

  async secretValues(names: readonly string[]): Promise<Map<string, string>> {
    const sealed = await this.#inner.secretValues(names);
    return new Map([...sealed].map(([name, value]) => [name, this.#sealer.openSecret(name, value)]));
  }

  deleteSecret(name: string): Promise<boolean> {
    return this.#inner.deleteSecret(name);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  #sealConfig(functionName: string, config: FunctionConfig): FunctionConfig {
    if (Object.keys(config.env).length === 0) return config;
    const sealed = this.#sealer.seal(functionName, JSON.stringify(config.env));
    return { ...config, env: { [sealedEnvKey]: sealed } };
  }

  #openVersion(version: FunctionVersion): FunctionVersion {
    const sealed = version.config.env[sealedEnvKey];
    if (sealed === undefined) return version;
    const env = JSON.parse(this.#sealer.open(version.functionName, sealed)) as Record<string, string>;
    return { ...version, config: { ...version.config, env } };
  }
}
