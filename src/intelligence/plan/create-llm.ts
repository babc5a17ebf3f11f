// The planner a platform runs, from its flags: `--llm rule-based|openai|llama-cpp` and the settings of each. Options
// are checked here, once; the adapters themselves are handed in by the composition root (this layer does not import
// adapters), so the heavy ones load only when configured.
import { availableParallelism } from 'node:os';
import { PlatformError } from '../../core/errors.js';
import type { Llm } from '../../core/ports/llm.js';

export const llmKinds = ['rule-based', 'openai', 'llama-cpp'] as const;
export type LlmKind = (typeof llmKinds)[number];

export interface LlmOptions {
  /** Default `rule-based`. */
  llm?: string | undefined;
  /** `--llm-url`: the OpenAI-compatible base URL, e.g. `http://127.0.0.1:8000/v1`. */
  llmUrl?: string | undefined;
  /** `--llm-model`: the model name the server knows. */
  llmModel?: string | undefined;
  /** From the environment (`SAVASSAN_LLM_API_KEY`), never a flag. */
  llmApiKey?: string | undefined;
  /** `--llm-model-path`: a GGUF file. */
  llmModelPath?: string | undefined;
  /** `--llm-threads`: CPU threads of the local model (default: half the cores, at least 1). */
  llmThreads?: number | undefined;
  /** Per model call (default 60 s). */
  timeoutMs?: number | undefined;
}

/** What the OpenAI-compatible adapter takes. */
export interface OpenAiLlmSettings {
  url: string;
  model: string;
  apiKey?: string | undefined;
  timeoutMs?: number | undefined;
}

/** What the GGUF adapter takes. */
export interface LlamaCppLlmSettings {
  modelPath: string;
  threads: number;
  timeoutMs?: number | undefined;
}

/** The adapters, as the composition root hands them in. */
export interface LlmFactories {
  openai(settings: OpenAiLlmSettings): Llm;
  llamaCpp(settings: LlamaCppLlmSettings): Promise<Llm>;
}

export type CompiledLlmOptions =
  { kind: 'rule-based' } | ({ kind: 'openai' } & OpenAiLlmSettings) | ({ kind: 'llama-cpp' } & LlamaCppLlmSettings);

const defaultThreads = (): number => Math.max(1, Math.floor(availableParallelism() / 2));

/** Checks and defaults the flags: INVALID_CONFIG naming the flag at fault. */
export function compileLlmOptions(options: LlmOptions): CompiledLlmOptions {
  const kind = options.llm ?? 'rule-based';
  if (!(llmKinds as readonly string[]).includes(kind)) {
    throw new PlatformError('INVALID_CONFIG', `--llm must be one of ${llmKinds.join(', ')}, got ${kind}`);
  }
  const timeoutMs = options.timeoutMs;
  if (kind === 'openai') {
    if (options.llmUrl === undefined || options.llmUrl === '') {
      throw new PlatformError('INVALID_CONFIG', '--llm openai needs --llm-url (e.g. http://127.0.0.1:8000/v1)');
    }
    let url: URL;
    try {
      url = new URL(options.llmUrl);
    } catch {
      throw new PlatformError('INVALID_CONFIG', `--llm-url is not a URL: ${options.llmUrl}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new PlatformError('INVALID_CONFIG', `--llm-url must be http or https, got ${url.protocol}`);
    }
    if (url.username !== '' || url.password !== '') {
      throw new PlatformError('INVALID_CONFIG', '--llm-url must not hold credentials; set SAVASSAN_LLM_API_KEY');
    }
    if (url.search !== '' || url.hash !== '') {
      // A key in the query (`?api-key=`, `?token=`) would be echoed in errors and plan problems.
      throw new PlatformError(
        'INVALID_CONFIG',
        '--llm-url must not hold a query string or a fragment (a key there would be echoed); set SAVASSAN_LLM_API_KEY',
      );
    }
    if (options.llmModel === undefined || options.llmModel === '') {
      throw new PlatformError('INVALID_CONFIG', '--llm openai needs --llm-model (the model name the server knows)');
    }
    const apiKey = options.llmApiKey === undefined || options.llmApiKey === '' ? undefined : options.llmApiKey;
    return {
      kind,
      url: url.href.replace(/\/+$/, ''),
      model: options.llmModel,
      ...(apiKey === undefined ? {} : { apiKey }),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    };
  }
  if (kind === 'llama-cpp') {
    if (options.llmModelPath === undefined || options.llmModelPath === '') {
      throw new PlatformError('INVALID_CONFIG', '--llm llama-cpp needs --llm-model-path FILE.gguf');
    }
    const threads = options.llmThreads ?? defaultThreads();
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) {
      throw new PlatformError('INVALID_CONFIG', `--llm-threads must be an integer from 1 to 256, got ${threads}`);
    }
    return {
      kind,
      modelPath: options.llmModelPath,
      threads,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    };
  }
  return { kind: 'rule-based' };
}

/**
 * The configured model, or null for the rule-based planner.
 *
 * @example
 * const llm = await createLlm({ llm: 'openai', llmUrl: 'http://127.0.0.1:8000/v1', llmModel: 'qwen2.5-7b' },
 *   { openai: createOpenAiLlm, llamaCpp: createLlamaCppLlm });
 * const plans = createPlanService({ store, llm });
 */
export async function createLlm(options: LlmOptions, factories: LlmFactories): Promise<Llm | null> {
  const compiled = compileLlmOptions(options);
  switch (compiled.kind) {
    case 'rule-based':
      return null;
    case 'openai': {
      const { kind: _kind, ...settings } = compiled;
      return factories.openai(settings);
    }
    case 'llama-cpp': {
      const { kind: _kind, ...settings } = compiled;
      return factories.llamaCpp(settings);
    }
  }
}
