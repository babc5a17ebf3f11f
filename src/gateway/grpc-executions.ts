// The gateway's gRPC `savassan.v1.ExecutionService` (proto/savassan/v1/execution.proto): launch, follow and
// terminate workflow executions, on the same execution backend and workflow deployer as the HTTP API, with the
// same API keys. Where the platform has intelligence services, the same server serves them too
// (proto/savassan/v1/intelligence.proto, `grpc-intelligence.ts`).
import type { IncomingHttpHeaders } from 'node:http';
import type { Metadata, StatusObject, handleUnaryCall } from '@grpc/grpc-js';
import { PlatformError } from '../core/errors.js';
import { launchInputsToJson } from '../core/flyte-literals.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { ExecutionBackend, ExecutionView } from '../core/ports/execution-backend.js';
import type { ExecutionKey } from '../core/ports/workflow-store.js';
import {
  ExecutionServiceService,
  ExecutionStatus,
  type ExecuteWorkflowResponse,
  type ExecutionServiceServer,
  type GetExecutionResponse,
} from '../gen/savassan/v1/execution.js';
import { grpcStatusFromError } from '../grpc/grpc-errors.js';
import { serveGrpc, type GrpcServerHandle } from '../grpc/grpc-transport.js';
import type { IntelligenceServices } from '../intelligence/services.js';
import { apiKeyCheck } from './http/api-keys.js';
import { addIntelligenceServices } from './grpc-intelligence.js';
import type { WorkflowDeployerPort } from './http/routes/workflows.js';

/** The bound ExecutionService: its address, and `close()`. */
export type ExecutionServiceHandle = GrpcServerHandle;

export interface ExecutionServiceOptions {
  /** `host:port` (port 0 picks one) or `unix:/path`. */
  address: string;
  backend: ExecutionBackend;
  deployer: WorkflowDeployerPort;
  /** Plans and curations: `IntelligenceService`, `KhaydarinService` and `DataCuratorService` on the same server. */
  intelligence?: IntelligenceServices | undefined;
  /** Keys a call must present as metadata `authorization: Bearer <key>` (or `x-api-key`); empty: none needed. */
  apiKeys: readonly string[];
  logger?: Logger | undefined;
  graceMs?: number | undefined;
}

const defaultProject = 'savassan';
const defaultDomain = 'development';

function keyOf(request: { project: string; domain: string; executionId: string }): ExecutionKey {
  if (request.executionId === '') throw new PlatformError('BAD_REQUEST', 'execution_id is required');
  return {
    project: request.project === '' ? defaultProject : request.project,
    domain: request.domain === '' ? defaultDomain : request.domain,
    name: request.executionId,
  };
}

function parseJson(text: string, field: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new PlatformError('BAD_REQUEST', `${field} is not JSON: ${(err as Error).message}`);
  }
}

/** Seconds of a protobuf JSON duration (`"1.250s"`). */
function durationSeconds(duration: string): number {
  const n = Number(duration.replace(/s$/, ''));
  return Number.isFinite(n) ? n : 0;
}

function versionOf(view: ExecutionView): number {
  const n = Number(view.spec.launch_plan.version);
  return Number.isSafeInteger(n) ? n : 0;
}

/** The headers an API key check reads, from call metadata. */
function headersOf(metadata: Metadata): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = {};
  for (const name of ['authorization', 'x-api-key'] as const) {
    const [value] = metadata.get(name);
    if (typeof value === 'string') headers[name] = value;
  }
  return headers;
}

/**
 * Serve `savassan.v1.ExecutionService` on `options.address`.
 *
 * @example
 * const handle = await serveExecutionService({ address: '127.0.0.1:0', backend, deployer, apiKeys: ['k1'] });
 * // a client: new ExecutionServiceClient(handle.address, credentials.createInsecure())
 * //   .executeWorkflow({ workflowId: 'pipeline', inputsJson: '{"x": 3}', ... }, bearerMetadata('k1'), cb)
 */
export async function serveExecutionService(options: ExecutionServiceOptions): Promise<ExecutionServiceHandle> {
  const { backend, deployer } = options;
  const logger = (options.logger ?? silentLogger).child({ component: 'execution-grpc' });
  const check = options.apiKeys.length === 0 ? null : apiKeyCheck(options.apiKeys);

  const failure = (method: string, err: unknown): StatusObject => {
    const error = PlatformError.from(err);
    if (!error.isUserError) logger.warn({ err: error, method }, 'gRPC call failed');
    const { code, details = error.rawMessage, metadata } = grpcStatusFromError(error);
    return { code, details, metadata: metadata as Metadata };
  };

  const unary =
    <Req, Res>(method: string, body: (request: Req) => Promise<Res>): handleUnaryCall<Req, Res> =>
    (call, callback) => {
      if (check !== null) {
        const { presented, valid } = check(headersOf(call.metadata));
        if (!valid) {
          logger.warn({ method, peer: call.getPeer() }, 'refused a gRPC call without a valid API key');
          callback(
            failure(
              method,
              new PlatformError(
                'UNAUTHORIZED',
                presented === 0
                  ? `${method} needs an API key: metadata "authorization: Bearer <key>"`
                  : 'the API key is not valid',
              ),
            ),
          );
          return;
        }
      }
      Promise.resolve()
        .then(() => body(call.request))
        .then(
          (response) => callback(null, response),
          (err: unknown) => callback(failure(method, err)),
        );
    };

  const execute = async (request: {
    workflowId: string;
    flyteWorkflowDefinitionJson: string;
    project: string;
    domain: string;
    inputsJson: string;
    executionName: string;
  }): Promise<ExecuteWorkflowResponse> => {
    const project = request.project === '' ? defaultProject : request.project;
    const domain = request.domain === '' ? defaultDomain : request.domain;
    const answer = { project, domain, executionId: '', message: '', errorCode: '', workflowVersion: 0 };
    try {
      if (request.workflowId === '') throw new PlatformError('BAD_REQUEST', 'workflow_id is required');
      let version: number | undefined;
      if (request.flyteWorkflowDefinitionJson !== '') {
        const spec = parseJson(request.flyteWorkflowDefinitionJson, 'flyte_workflow_definition_json');
        version = (await deployer.deploy(request.workflowId, spec)).record.version;
      }
      const inputs = launchInputsToJson(request.inputsJson === '' ? {} : parseJson(request.inputsJson, 'inputs_json'));
      const key = await backend.launch({
        project,
        domain,
        name: request.executionName === '' ? undefined : request.executionName,
        workflow: request.workflowId,
        version,
        inputs,
      });
      const view = await backend.get(key).catch(() => null);
      return {
        ...answer,
        executionId: key.name,
        status: ExecutionStatus.EXECUTION_STATUS_SUBMITTED,
        workflowVersion: version ?? (view === null ? 0 : versionOf(view)),
      };
    } catch (err) {
      const error = PlatformError.from(err);
      // The request's own faults are answered; the platform's end the call with a status.
      if (error.status >= 500) throw error;
      return {
        ...answer,
        status: ExecutionStatus.EXECUTION_STATUS_FAILED,
        message: error.rawMessage,
        errorCode: error.code,
      };
    }
  };

  const get = async (key: ExecutionKey): Promise<GetExecutionResponse> => {
    const [view, nodes] = await Promise.all([backend.get(key), backend.nodeExecutions(key)]);
    const { closure } = view;
    const outputs = closure.phase === 'SUCCEEDED' ? (await backend.data(key)).outputs : undefined;
    return {
      executionId: key.name,
      project: key.project,
      domain: key.domain,
      workflow: view.spec.launch_plan.name,
      workflowVersion: versionOf(view),
      phase: closure.phase,
      startedAt: closure.started_at ?? '',
      createdAt: closure.created_at,
      durationSeconds: durationSeconds(closure.duration),
      errorKind: closure.error?.kind ?? '',
      errorCode: closure.error?.code ?? '',
      errorMessage: closure.error?.message ?? '',
      outputsJson: outputs === undefined ? '' : JSON.stringify(outputs),
      nodes: nodes.map((node) => ({
        nodeId: node.id.node_id,
        phase: node.closure.phase,
        attempts: node.attempts.length,
        errorCode: node.closure.error?.code ?? '',
        errorMessage: node.closure.error?.message ?? '',
        invocationIds: node.invocation_ids,
      })),
    };
  };

  const service: ExecutionServiceServer = {
    executeWorkflow: unary('ExecuteWorkflow', execute),
    getExecution: unary('GetExecution', (request) => get(keyOf(request))),
    terminateExecution: unary('TerminateExecution', async (request) => {
      await backend.terminate(keyOf(request), request.cause === '' ? 'terminated' : request.cause);
      return {};
    }),
  };
  const { intelligence } = options;
  return serveGrpc(
    options.address,
    (server) => {
      server.addService(ExecutionServiceService, service);
      if (intelligence !== undefined) addIntelligenceServices(server, intelligence, unary);
    },
    { graceMs: options.graceMs },
  );
}
