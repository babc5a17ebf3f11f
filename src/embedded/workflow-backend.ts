/**
 * Which `ExecutionBackend` runs workflow executions, for `savassan start` and `savassan gateway`: the built-in durable
 * engine (default), or a FlyteAdmin (`--workflow-backend flyte --flyte-url URL`, its token from
 * `SAVASSAN_FLYTE_TOKEN`). Deploys are stored in Savassan either way and registered with the chosen backend.
 */
import { createFlyteBackend } from '../adapters/flyte/flyte-backend.js';
import { PlatformError } from '../core/errors.js';
import type { ExecutionBackend } from '../core/ports/execution-backend.js';

export type WorkflowBackendKind = 'builtin' | 'flyte';

export interface WorkflowBackendOptions {
  /** `builtin` (default) or `flyte`. */
  kind?: WorkflowBackendKind | undefined;
  /** FlyteAdmin's HTTP address (`--flyte-url`); required with `flyte`. */
  flyteUrl?: string | undefined;
  /** The Flyte project workflows are registered in (`--flyte-project`; default `savassan`). */
  flyteProject?: string | undefined;
  /** The Flyte domains workflows are registered in (`--flyte-domains`; default `development`). */
  flyteDomains?: readonly string[] | undefined;
  /** FlyteAdmin's bearer token, from `SAVASSAN_FLYTE_TOKEN` (never a command-line argument). */
  flyteToken?: string | undefined;
}

export type CompiledWorkflowBackend =
  { kind: 'builtin' } | { kind: 'flyte'; url: string; project: string; domains: string[]; token: string | undefined };

/** Validate and default once, at the edge: INVALID_CONFIG for `flyte` without a URL, or Flyte options without `flyte`. */
export function compileWorkflowBackendOptions(options: WorkflowBackendOptions = {}): CompiledWorkflowBackend {
  const kind = options.kind ?? 'builtin';
  if (kind !== 'builtin' && kind !== 'flyte') {
    throw new PlatformError('INVALID_CONFIG', `the workflow backend must be builtin or flyte, got ${String(kind)}`);
  }
  if (kind === 'builtin') {
    const given = [
      options.flyteUrl === undefined ? null : '--flyte-url',
      options.flyteProject === undefined ? null : '--flyte-project',
      options.flyteDomains === undefined ? null : '--flyte-domains',
    ].filter((name) => name !== null);
    if (given.length > 0) {
      throw new PlatformError(
        'INVALID_CONFIG',
        `${given.join(', ')} ${given.length === 1 ? 'applies' : 'apply'} only to the flyte workflow backend: add --workflow-backend flyte`,
      );
    }
    return { kind };
  }
  const url = options.flyteUrl ?? '';
  if (url === '') {
    throw new PlatformError(
      'INVALID_CONFIG',
      "--workflow-backend flyte needs --flyte-url URL (FlyteAdmin's HTTP address, e.g. http://flyteadmin.flyte:80)",
    );
  }
  let protocol: string;
  try {
    protocol = new URL(url).protocol;
  } catch {
    throw new PlatformError('INVALID_CONFIG', `--flyte-url ${url} is not a URL`);
  }
  if (protocol !== 'http:' && protocol !== 'https:') {
    throw new PlatformError('INVALID_CONFIG', `--flyte-url ${url} must be an http:// or https:// URL`);
  }
  const project = options.flyteProject ?? 'savassan';
  const domains = [...(options.flyteDomains ?? ['development'])];
  const label = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
  if (!label.test(project)) {
    throw new PlatformError('INVALID_CONFIG', `--flyte-project must be a lowercase label, got ${project}`);
  }
  if (domains.length === 0 || domains.some((domain) => !label.test(domain))) {
    throw new PlatformError(
      'INVALID_CONFIG',
      `--flyte-domains must be lowercase labels separated by commas, got ${domains.join(',')}`,
    );
  }
  const token = options.flyteToken === '' ? undefined : options.flyteToken;
  return { kind, url, project, domains, token };
}

/** The chosen backend; `builtin` is the composition root's built-in backend, built only when chosen. */
export function createWorkflowBackend(
  config: CompiledWorkflowBackend,
  builtin: () => ExecutionBackend,
): ExecutionBackend {
  if (config.kind === 'builtin') return builtin();
  return createFlyteBackend({
    url: config.url,
    token: config.token,
    project: config.project,
    domains: config.domains,
  });
}

/** What a start banner or log line may say about the backend: never the token. */
export function describeWorkflowBackend(config: CompiledWorkflowBackend): string {
  if (config.kind === 'builtin') return 'builtin';
  const url = new URL(config.url);
  url.username = '';
  url.password = '';
  return `flyte (${url.href.replace(/\/+$/, '')})`;
}
