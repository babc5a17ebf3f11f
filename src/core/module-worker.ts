import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts a worker thread on the module `name` (without extension) in the folder of `base` (a module's
 * `import.meta.url`): from compiled `dist/`, the `.js` file; from `src/` under tsx there is only the `.ts` source, and
 * Node 20 ignores `--import` in a worker's `execArgv` (nodejs/node#47747), so a small bootstrap registers tsx inside
 * the worker and then imports the source.
 */
export function startModuleWorker(base: string, name: string, options: WorkerOptions = {}): Worker {
  const compiled = new URL(`./${name}.js`, base);
  if (existsSync(fileURLToPath(compiled))) return new Worker(compiled, options);
  const source = new URL(`./${name}.ts`, base);
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(source.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true, execArgv: [] });
}
