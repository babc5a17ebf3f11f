import { PlatformError } from '../core/errors.js';
import type { ExecutionBackend } from '../core/ports/execution-backend.js';
import type {
  ActiveExecutionsCursor,
  WorkflowStore,
  WorkflowSummary,
  WorkflowVersionRecord,
} from '../core/ports/workflow-store.js';
import {
  canonicalSpecText,
  checkJsonDepth,
  checkTargets,
  compileWorkflow,
  specHash,
} from '../core/workflow-compile.js';
import { maxWorkflowSpecBytes, type CompiledWorkflow } from '../core/workflow-spec.js';

export interface WorkflowDeployerOptions {
  store: WorkflowStore;
  backend: ExecutionBackend;
  /** Whether a function exists (a node's target). */
  functionExists: (name: string) => Promise<boolean>;
  /** Built-in tasks nodes may name besides functions (`savassan.plan`...); none when absent. */
  builtinTasks?: ReadonlySet<string> | undefined;
}

const namePattern = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Active executions read at once while looking for those a deleted workflow would strand. */
const activePage = 1000;

/** What `deploy` did. */
export interface DeployedWorkflow {
  record: WorkflowVersionRecord;
  created: boolean;
}

/**
 * Deploys workflows: compiles and checks a spec (its functions and sub-workflows exist), stores it as the next
 * version (the same spec again gives back the latest version), and registers it with the execution backend.
 */
export class WorkflowDeployer {
  readonly #options: WorkflowDeployerOptions;

  constructor(options: WorkflowDeployerOptions) {
    this.#options = options;
  }

  /** BAD_REQUEST naming the node and path for a spec that does not compile or whose targets do not exist. */
  async deploy(name: string, json: unknown): Promise<DeployedWorkflow> {
    const compiled = await this.#check(name, json);
    const text = canonicalSpecText(compiled.spec);
    const result = await this.#options.store.putWorkflow(name, text, specHash(compiled.spec));
    if (result.created) await this.#options.backend.register(name, result.record.version, text);
    return result;
  }

  /** What a deploy would check, without storing: the node count and the order the nodes run in. */
  async validate(name: string, json: unknown): Promise<{ valid: true; nodeCount: number; order: string[] }> {
    const compiled = await this.#check(name, json);
    return { valid: true, nodeCount: compiled.order.length, order: compiled.order };
  }

  /** A version (absent: the latest); NOT_FOUND when there is none. */
  async get(name: string, version?: number): Promise<WorkflowVersionRecord> {
    const record = await this.#options.store.getWorkflow(name, version);
    if (record === null) {
      throw new PlatformError(
        'NOT_FOUND',
        version === undefined ? `workflow ${name} not found` : `workflow ${name} version ${version} not found`,
      );
    }
    return record;
  }

  list(): Promise<WorkflowSummary[]> {
    return this.#options.store.listWorkflows();
  }

  /** Newest first; NOT_FOUND when the workflow has none. */
  async versions(name: string): Promise<WorkflowVersionRecord[]> {
    const versions = await this.#options.store.listWorkflowVersions(name);
    if (versions.length === 0) throw new PlatformError('NOT_FOUND', `workflow ${name} not found`);
    return versions;
  }

  /**
   * Every version goes (ended executions stay); NOT_FOUND when there was none, CONFLICT while an unfinished execution
   * runs one of its versions (terminate it, or wait for its end).
   */
  async delete(name: string): Promise<void> {
    const { store } = this.#options;
    let after: ActiveExecutionsCursor | undefined;
    for (;;) {
      const page = await store.activeExecutions(activePage, after);
      const using = page.find((execution) => execution.workflowName === name);
      if (using !== undefined) {
        throw new PlatformError(
          'CONFLICT',
          `workflow ${name} is in use by the unfinished execution ${using.project}/${using.domain}/${using.name}: terminate it or wait for its end`,
        );
      }
      const last = page.at(-1);
      if (page.length < activePage || last === undefined) break;
      after = { project: last.project, domain: last.domain, name: last.name, createdAt: last.createdAt };
    }
    if (!(await store.deleteWorkflow(name))) {
      throw new PlatformError('NOT_FOUND', `workflow ${name} not found`);
    }
  }

  async #check(name: string, json: unknown): Promise<CompiledWorkflow> {
    if (typeof name !== 'string' || !namePattern.test(name)) {
      throw new PlatformError(
        'BAD_REQUEST',
        `a workflow name is 1-63 lowercase letters, digits, dashes and underscores, starting with a letter or digit, got ${JSON.stringify(name)}`,
      );
    }
    checkJsonDepth('the spec', json);
    const bytes = Buffer.byteLength(JSON.stringify(json) ?? '');
    if (bytes > maxWorkflowSpecBytes) {
      throw new PlatformError('PAYLOAD_TOO_LARGE', `a workflow spec may be at most ${maxWorkflowSpecBytes} bytes`);
    }
    const compiled = compileWorkflow(json);
    const { store } = this.#options;
    await checkTargets(
      compiled,
      {
        functionExists: this.#options.functionExists,
        builtinTasks: this.#options.builtinTasks,
        workflow: async (child, version) => {
          const record = await store.getWorkflow(child, version ?? undefined);
          return record === null ? null : compileWorkflow(JSON.parse(record.spec) as unknown);
        },
      },
      name,
    );
    return compiled;
  }
}
