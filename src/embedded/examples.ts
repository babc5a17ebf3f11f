import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { readBundle } from '../client/bundle.js';
import { readDeployConfig } from '../client/deploy-config.js';
import type { Logger } from '../core/logger.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { Deployer } from '../gateway/deployer.js';

/**
 * Deploys each folder of `examplesDir` as a function named after it, when no function exists yet
 * (first start). A folder may hold `savassan.json` with deploy settings (handler, env, timeoutSeconds...), as
 * `savassan deploy` reads it.
 */
export async function deployExamples(
  deployer: Deployer,
  metadata: MetadataStore,
  examplesDir: string,
  logger: Logger,
): Promise<string[]> {
  if ((await metadata.listFunctions()).length > 0) return [];
  let entries;
  try {
    entries = await readdir(examplesDir, { withFileTypes: true });
  } catch {
    return [];
  }
  const deployed: string[] = [];
  for (const entry of entries.filter((e) => e.isDirectory()).sort((a, b) => a.name.localeCompare(b.name))) {
    const dir = join(examplesDir, entry.name);
    try {
      await deployer.deploy(entry.name, await readBundle(dir), (await readDeployConfig(dir)) ?? {});
      deployed.push(entry.name);
    } catch (err) {
      logger.warn({ err, example: entry.name }, 'example failed to deploy');
    }
  }
  return deployed;
}
