// A local GGUF model through node-llama-cpp, on the CPU, as the `Llm` port. The package is loaded with `await
// import` when this adapter is created, so a platform not configured for it never loads it. A JSON schema in the
// request becomes a grammar, so the model can only emit JSON of the schema's shape (values within the schema's
// ranges and patterns are still the parser's to check). One context, one sequence: calls run one at a time, queued.
import { basename } from 'node:path';
import { stat } from 'node:fs/promises';
import { PlatformError } from '../../core/errors.js';
import type { Llm, LlmMessage, LlmRequest, LlmResponse } from '../../core/ports/llm.js';
// Types only: the package itself is loaded by `await import` in the factory.
import type * as NodeLlamaCppModule from 'node-llama-cpp';
import type { ChatHistoryItem, LlamaGrammar } from 'node-llama-cpp';

export interface LlamaCppLlmOptions {
  /** The GGUF file. */
  modelPath: string;
  /** CPU threads for evaluation (at least 1). */
  threads: number;
  /** Tokens of context (default 4096): the prompt with the schema, repairs and the answer must fit. */
  contextSize?: number | undefined;
  /** Per call (default 120 s). */
  timeoutMs?: number | undefined;
}

const defaultTimeoutMs = 120_000;
const defaultContextSize = 4096;

type NodeLlamaCpp = typeof NodeLlamaCppModule;

/** Earlier messages as the chat session's history; the last user message is the one prompted. */
function historyOf(messages: readonly LlmMessage[]): { history: ChatHistoryItem[]; prompt: string } {
  const last = messages.at(-1);
  if (last === undefined || last.role !== 'user') {
    throw new PlatformError('BAD_REQUEST', 'a llama-cpp request must end with a user message');
  }
  const history: ChatHistoryItem[] = messages.slice(0, -1).map((m) => {
    if (m.role === 'system') return { type: 'system', text: m.content };
    if (m.role === 'user') return { type: 'user', text: m.content };
    return { type: 'model', response: [m.content] };
  });
  return { history, prompt: last.content };
}

/**
 * Loads the model (UNAVAILABLE when the file or the package cannot be loaded) and answers chat requests.
 *
 * @example
 * const llm = await createLlamaCppLlm({ modelPath: '/models/qwen2.5-1.5b-instruct-q4_k_m.gguf', threads: 4 });
 * const { text } = await llm.complete({ messages, jsonSchema: planJsonSchema, maxTokens: 1024 });
 * await llm.close();
 */
export async function createLlamaCppLlm(options: LlamaCppLlmOptions): Promise<Llm> {
  const file = basename(options.modelPath);
  try {
    const info = await stat(options.modelPath);
    if (!info.isFile()) throw new Error('not a file');
  } catch (err) {
    throw new PlatformError('UNAVAILABLE', `no GGUF model at ${options.modelPath}: ${(err as Error).message}`);
  }
  let lib: NodeLlamaCpp;
  try {
    lib = await import('node-llama-cpp');
  } catch (err) {
    throw new PlatformError('UNAVAILABLE', `node-llama-cpp cannot be loaded: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  let llama: Awaited<ReturnType<NodeLlamaCpp['getLlama']>>;
  let model: Awaited<ReturnType<typeof llama.loadModel>>;
  let context: Awaited<ReturnType<typeof model.createContext>>;
  try {
    llama = await lib.getLlama({ gpu: false, build: 'never', logLevel: lib.LlamaLogLevel.error, logger: () => {} });
    model = await llama.loadModel({ modelPath: options.modelPath });
    context = await model.createContext({
      threads: options.threads,
      contextSize: options.contextSize ?? defaultContextSize,
      sequences: 1,
    });
  } catch (err) {
    throw new PlatformError('UNAVAILABLE', `cannot load the GGUF model ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const sequence = context.getSequence();
  const grammars = new Map<string, Promise<LlamaGrammar>>();
  let queue: Promise<unknown> = Promise.resolve();
  let closing: Promise<void> | null = null;

  const grammarFor = (schema: object): Promise<LlamaGrammar> => {
    const key = JSON.stringify(schema);
    let grammar = grammars.get(key);
    if (grammar === undefined) {
      // The schema is the platform's own (`planJsonSchema`), in the subset node-llama-cpp's grammars take.
      grammar = llama.createGrammarForJsonSchema(schema as Parameters<typeof llama.createGrammarForJsonSchema>[0]);
      grammars.set(key, grammar);
    }
    return grammar;
  };

  async function run(request: LlmRequest): Promise<LlmResponse> {
    const { history, prompt } = historyOf(request.messages);
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = request.signal === undefined ? timeout : AbortSignal.any([timeout, request.signal]);
    // The sequence keeps what it evaluated: the chat adapts it to the new prompt, so the shared prefix (the system
    // message with the schema, and a repair's earlier turns) is not evaluated again.
    const session = new lib.LlamaChatSession({ contextSequence: sequence, autoDisposeSequence: false });
    try {
      session.setChatHistory(history);
      const grammar = request.jsonSchema === undefined ? undefined : await grammarFor(request.jsonSchema);
      const text = await session.prompt(prompt, {
        ...(grammar === undefined ? {} : { grammar }),
        ...(request.maxTokens === undefined ? {} : { maxTokens: request.maxTokens }),
        temperature: request.temperature ?? 0,
        signal,
      });
      return { text, model: file };
    } catch (err) {
      if (timeout.aborted) {
        throw new PlatformError('REQUEST_TIMEOUT', `the local model ${file} did not answer within ${timeoutMs} ms`);
      }
      if (request.signal?.aborted === true) throw new PlatformError('UNAVAILABLE', 'the model call was cancelled');
      throw new PlatformError('UNAVAILABLE', `the local model ${file} failed: ${(err as Error).message}`, {
        cause: err,
      });
    } finally {
      session.dispose({ disposeSequence: false });
    }
  }

  return {
    kind: 'llama-cpp',
    model: file,
    constrained: true,

    complete(request) {
      if (closing !== null) return Promise.reject(new PlatformError('UNAVAILABLE', 'the model adapter is closed'));
      const result = queue.then(() => run(request));
      queue = result.catch(() => {});
      return result;
    },

    close() {
      closing ??= (async () => {
        await queue;
        await context.dispose();
        await model.dispose();
        await llama.dispose();
      })();
      return closing;
    },
  };
}
