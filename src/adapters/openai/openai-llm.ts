// An OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp's server, Ollama, LiteLLM…) as the `Llm` port,
// over `fetch`. The plan's schema goes as a `json_schema` response format; a server that refuses that with a 400
// naming the response format is asked for `json_object` from then on. Redirects are not followed (a redirect could
// carry the key elsewhere); the key goes only in the Authorization header and never into an error or a log. An
// answer is read as a stream and refused past `maxAnswerBytes` (`max_tokens` is only a request to the server).
import { PlatformError } from '../../core/errors.js';
import type { Llm, LlmRequest, LlmResponse } from '../../core/ports/llm.js';

export interface OpenAiLlmOptions {
  /** The base URL, e.g. `http://127.0.0.1:8000/v1` (`/chat/completions` is appended). */
  url: string;
  model: string;
  /** Sent as `Authorization: Bearer KEY`. */
  apiKey?: string | undefined;
  /** Per call, the answer read in full included (default 60 s). */
  timeoutMs?: number | undefined;
}

const defaultTimeoutMs = 60_000;
/** The most of a server's error body quoted in an error message. */
const quotedChars = 300;
/** The most of a server's answer (a completion or an error body) read. */
export const maxAnswerBytes = 256 * 1024;

interface ChatCompletion {
  model?: unknown;
  choices?: { message?: { content?: unknown } }[];
  usage?: { completion_tokens?: unknown };
}

/**
 * The adapter. Errors: UNAVAILABLE (unreachable, a redirect, 401/403, 429, 5xx, another 4xx, an answer that is not a
 * chat completion, an answer over 256 KiB: the message says which), REQUEST_TIMEOUT past `timeoutMs`. Messages name
 * the endpoint by origin and path only.
 *
 * @example
 * const llm = createOpenAiLlm({ url: 'http://127.0.0.1:8000/v1', model: 'qwen2.5-7b-instruct', apiKey });
 * const { text } = await llm.complete({ messages: [{ role: 'user', content: 'hi' }] });
 */
export function createOpenAiLlm(options: OpenAiLlmOptions): Llm {
  const base = new URL(options.url);
  base.pathname = `${base.pathname.replace(/\/+$/, '')}/chat/completions`;
  const endpoint = base.href;
  /** The endpoint as messages show it: no query, fragment or credentials. */
  const shown = `${base.origin}${base.pathname}`;
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  const apiKey = options.apiKey === undefined || options.apiKey === '' ? undefined : options.apiKey;
  let schemaFormat = true;
  let closed = false;

  /** Text from the server or `fetch`, safe to quote: the key blanked, the endpoint shown without its query, trimmed. */
  const quote = (text: string): string => {
    const bare = text.split(endpoint).join(shown);
    const safe = apiKey === undefined ? bare : bare.split(apiKey).join('***');
    const flat = safe.replace(/\s+/g, ' ').trim();
    return flat.length > quotedChars ? `${flat.slice(0, quotedChars)}…` : flat;
  };

  async function post(request: LlmRequest, format: 'json_schema' | 'json_object' | null): Promise<Response> {
    const body: Record<string, unknown> = {
      model: options.model,
      messages: request.messages,
      temperature: request.temperature ?? 0,
      stream: false,
    };
    if (request.maxTokens !== undefined) body.max_tokens = request.maxTokens;
    if (format === 'json_schema' && request.jsonSchema !== undefined) {
      body.response_format = {
        type: 'json_schema',
        json_schema: { name: 'fine_tune_plan', schema: request.jsonSchema, strict: false },
      };
    } else if (format !== null) {
      body.response_format = { type: 'json_object' };
    }
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' };
    if (apiKey !== undefined) headers.authorization = `Bearer ${apiKey}`;
    return fetch(endpoint, {
      method: 'POST',
      headers,
      body: JSON.stringify(body),
      redirect: 'manual',
      signal: signalFor(request.signal),
    });
  }

  function signalFor(caller: AbortSignal | undefined): AbortSignal {
    const timeout = AbortSignal.timeout(timeoutMs);
    return caller === undefined ? timeout : AbortSignal.any([timeout, caller]);
  }

  function failure(err: unknown, caller: AbortSignal | undefined): PlatformError {
    if (err instanceof PlatformError) return err;
    const e = err as Error;
    if (e.name === 'TimeoutError' || (e.name === 'AbortError' && caller?.aborted !== true)) {
      return new PlatformError('REQUEST_TIMEOUT', `the model server at ${shown} did not answer within ${timeoutMs} ms`);
    }
    if (e.name === 'AbortError') return new PlatformError('UNAVAILABLE', 'the model call was cancelled');
    const reason = e.cause instanceof Error ? e.cause.message : e.message;
    return new PlatformError('UNAVAILABLE', `cannot reach the model server at ${shown}: ${quote(reason)}`);
  }

  /**
   * The body as text, read up to `maxAnswerBytes`: past that the read is aborted and, with `truncate`, what was read
   * is returned (an error body, only quoted), else UNAVAILABLE.
   */
  async function bodyText(response: Response, truncate: boolean): Promise<string> {
    if (response.body === null) return '';
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (size + value.byteLength > maxAnswerBytes) {
        await reader.cancel().catch(() => undefined);
        if (!truncate) {
          throw new PlatformError(
            'UNAVAILABLE',
            `the model server's answer is over ${maxAnswerBytes / 1024} KiB; it was not read`,
          );
        }
        chunks.push(value.subarray(0, maxAnswerBytes - size));
        break;
      }
      chunks.push(value);
      size += value.byteLength;
    }
    return Buffer.concat(chunks).toString('utf8');
  }

  /** An error body, read up to the cap, or '' when it cannot be read. */
  const errorText = (response: Response): Promise<string> => bodyText(response, true).catch(() => '');

  async function answer(response: Response): Promise<LlmResponse> {
    const text = await bodyText(response, false);
    let parsed: ChatCompletion;
    try {
      parsed = JSON.parse(text) as ChatCompletion;
    } catch {
      throw new PlatformError('UNAVAILABLE', `the model server's answer is not JSON: ${quote(text)}`);
    }
    const content = Array.isArray(parsed.choices) ? parsed.choices[0]?.message?.content : undefined;
    if (typeof content !== 'string') {
      throw new PlatformError(
        'UNAVAILABLE',
        `the model server's answer is not a chat completion (no choices[0].message.content): ${quote(text)}`,
      );
    }
    const tokens = parsed.usage?.completion_tokens;
    return {
      text: content,
      model: typeof parsed.model === 'string' && parsed.model !== '' ? parsed.model : options.model,
      ...(typeof tokens === 'number' ? { completionTokens: tokens } : {}),
    };
  }

  function refusal(status: number, text: string): PlatformError {
    if (status >= 300 && status < 400) {
      return new PlatformError(
        'UNAVAILABLE',
        `the model server answered a redirect (${status}); redirects are not followed`,
      );
    }
    if (status === 401 || status === 403) {
      return new PlatformError(
        'UNAVAILABLE',
        `the model server refused the credentials (${status}); check SAVASSAN_LLM_API_KEY: ${quote(text)}`,
      );
    }
    if (status === 429)
      return new PlatformError('UNAVAILABLE', `the model server is rate limiting (429): ${quote(text)}`);
    if (status >= 500) return new PlatformError('UNAVAILABLE', `the model server failed (${status}): ${quote(text)}`);
    return new PlatformError('UNAVAILABLE', `the model server refused the request (${status}): ${quote(text)}`);
  }

  return {
    kind: 'openai-compatible',
    model: options.model,
    get constrained() {
      return schemaFormat;
    },

    async complete(request) {
      if (closed) throw new PlatformError('UNAVAILABLE', 'the model adapter is closed');
      const format = request.jsonSchema === undefined ? null : schemaFormat ? 'json_schema' : 'json_object';
      try {
        let response = await post(request, format);
        if (response.status === 400 && format === 'json_schema') {
          const text = await errorText(response);
          if (!/response_format|json_schema/i.test(text)) throw refusal(400, text);
          // The server takes no JSON-schema response format: ask for a JSON object, now and from now on.
          schemaFormat = false;
          response = await post(request, 'json_object');
        }
        if (response.status >= 300) throw refusal(response.status, await errorText(response));
        return await answer(response);
      } catch (err) {
        throw failure(err, request.signal);
      }
    },

    close() {
      closed = true;
      return Promise.resolve();
    },
  };
}
