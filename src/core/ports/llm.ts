/** One message of a chat, as chat-completion APIs take them. */
export interface LlmMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface LlmRequest {
  messages: LlmMessage[];
  /**
   * The JSON Schema the answer must match: adapters that can constrain generation do (a grammar, a JSON-schema
   * response format); the caller validates the answer either way.
   */
  jsonSchema?: object | undefined;
  /** Most tokens to generate. */
  maxTokens?: number | undefined;
  /** 0 for the most likely answer (the default). */
  temperature?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface LlmResponse {
  /** The model's raw answer text. */
  text: string;
  /** The model that answered, as its server names it (or the file name of a local model). */
  model: string;
  /** Tokens generated, where the adapter knows. */
  completionTokens?: number | undefined;
}

/**
 * A language model the plan chain asks. Failures are PlatformErrors: UNAVAILABLE (unreachable, a 5xx or 429, an
 * answer that is not a chat completion, an auth failure: the message says which), REQUEST_TIMEOUT; never an answer
 * made up. Keys never appear in messages.
 */
export interface Llm {
  /** `openai-compatible`, `llama-cpp`: how `GET /v1/plans/{id}` and the logs name the adapter. */
  readonly kind: string;
  /** The configured model (URL's model name, or the GGUF file's name). */
  readonly model: string;
  /** Whether `jsonSchema` constrains generation (grammar or server-side schema) rather than only being asked for. */
  readonly constrained: boolean;
  complete(request: LlmRequest): Promise<LlmResponse>;
  close(): Promise<void>;
}
