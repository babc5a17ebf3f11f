import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readBundle } from '../client/bundle.js';
import { readDeployConfig } from '../client/deploy-config.js';
import type { Logger } from '../core/logger.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { Deployer } from '../gateway/deployer.js';
import type { WorkflowDeployer } from '../workflows/workflow-deployer.js';

/** The folder of `examplesDir` whose `*.json` files are workflow specs, not a function. */
const workflowsFolder = 'workflows';

/**
 * Deploys each folder of `examplesDir` as a function named after it, when no function exists yet
 * (first start). A folder may hold `savassan.json` with deploy settings (handler, env, timeoutSeconds...), as
 * `savassan deploy` reads it. Then each `workflows/NAME.json` is deployed as the workflow NAME (listed as
 * `workflow NAME`), once the functions it runs are there.
 */
export async function deployExamples(
  deployer: Deployer,
  workflows: Pick<WorkflowDeployer, 'deploy'>,
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
  const folders = entries.filter((e) => e.isDirectory() && e.name !== workflowsFolder);
  for (const entry of folders.sort((a, b) => a.name.localeCompare(b.name))) {
    const dir = join(examplesDir, entry.name);
    try {
      await deployer.deploy(entry.name, await readBundle(dir), (await readDeployConfig(dir)) ?? {});
      deployed.push(entry.name);
    } catch (err) {
      logger.warn({ err, example: entry.name }, 'example failed to deploy');
    }
  }
  const specs = await readdir(join(examplesDir, workflowsFolder)).catch(() => [] as string[]);
  for (const file of specs.filter((f) => f.endsWith('.json')).sort()) {
    const name = file.slice(0, -'.json'.length);
    try {
      const spec = JSON.parse(await readFile(join(examplesDir, workflowsFolder, file), 'utf8')) as unknown;
      await workflows.deploy(name, spec);
      deployed.push(`workflow ${name}`);
    } catch (err) {
      logger.warn({ err, example: file }, 'example workflow failed to deploy');
    }
  }
  return deployed;
}
