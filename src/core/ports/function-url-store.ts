/** Who may call a function URL: anyone (`none`), or callers presenting one of the platform's API keys (`key`). */
export type FunctionUrlAuth = 'none' | 'key';

/** The CORS rules of a function URL: the platform answers preflights and adds CORS headers to answers. */
export interface FunctionUrlCors {
  /** Origins allowed (`*` for any). */
  allowOrigins: string[];
  /** Methods allowed; empty: any method (`*`). */
  allowMethods: string[];
  /** Request headers allowed; empty: any header (`*`). */
  allowHeaders: string[];
}

/** A function's URL: `/fn/{functionName}/...` (and `{functionName}.{url domain}`) serves it over raw HTTP. */
export interface FunctionUrlConfig {
  functionName: string;
  auth: FunctionUrlAuth;
  /** Null: no CORS (no preflight answers, no CORS headers). */
  cors: FunctionUrlCors | null;
  createdAt: Date;
}

/** A function URL as asked for: auth defaults to `key`, CORS to none. */
export interface NewFunctionUrl {
  functionName: string;
  auth?: FunctionUrlAuth | undefined;
  cors?: FunctionUrlCors | null | undefined;
}

/**
 * Function URL configs, one per function, stored beside the functions. `put` creates or replaces a function's config
 * (`created` says which; a replaced config keeps its `createdAt`), and throws NOT_FOUND when the function does not
 * exist, BAD_REQUEST for an invalid setting. A function's config goes with it when the function is deleted.
 */
export interface FunctionUrlStore {
  put(input: NewFunctionUrl): Promise<{ config: FunctionUrlConfig; created: boolean }>;
  get(functionName: string): Promise<FunctionUrlConfig | null>;
  /** By function name. */
  list(): Promise<FunctionUrlConfig[]>;
  /** False when there was none. */
  delete(functionName: string): Promise<boolean>;
}
