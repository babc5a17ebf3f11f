// The Flyte-shaped execution API under `/api/v1`: the paths, bodies and answers of FlyteAdmin's REST gateway for
// executions, node executions and their data, so that Flyte's clients (and anyone who knows them) can launch and
// follow workflows. Errors here are `{"code", "message", "kind"}` (kind USER for 4xx, SYSTEM for 5xx).
import type { FastifyError, FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PlatformError } from '../../../core/errors.js';
import { launchInputsToJson } from '../../../core/flyte-literals.js';
import {
  nodeExecutionPageDefault,
  nodeExecutionPageMax,
  type ExecutionBackend,
} from '../../../core/ports/execution-backend.js';
import { maxEventBytes } from '../../../core/function-config.js';
import { toPlatformError, unknownQueryError } from '../route-defaults.js';
import { QueryCount, flyteErrorResponse, queryCount } from '../schemas.js';
import { executionPhaseNames, nodePhaseNames } from '../../../core/ports/workflow-store.js';

export interface ExecutionRoutesOptions {
  backend: ExecutionBackend;
}

/** The body of an error under `/api/v1`. */
export function flyteErrorAnswer(err: PlatformError): {
  status: number;
  headers: Record<string, string>;
  body: string;
} {
  const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
  const retryAfter = err.details.retryAfterSeconds;
  if (typeof retryAfter === 'number') headers['retry-after'] = String(retryAfter);
  const body = JSON.stringify({ code: err.code, message: err.rawMessage, kind: err.status < 500 ? 'USER' : 'SYSTEM' });
  return { status: err.status, headers, body };
}

const label = (what: string) =>
  Type.String({
    maxLength: 63,
    pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$',
    description: `the ${what}: lowercase letters, digits and dashes, at most 63 characters`,
  });

const Key = Type.Object(
  { project: label('project'), domain: label('domain'), name: label('execution name') },
  { additionalProperties: false },
);
const KeyView = Type.Object({ project: Type.String(), domain: Type.String(), name: Type.String() });
const ProjectDomain = Type.Object({ project: label('project'), domain: label('domain') });

const ErrorView = Type.Object({
  code: Type.String(),
  message: Type.String(),
  kind: Type.Union([Type.Literal('USER'), Type.Literal('SYSTEM')]),
});

const ExecutionPhaseView = Type.String({ enum: [...executionPhaseNames] });
const NodePhaseView = Type.String({ enum: [...nodePhaseNames] });
const Duration = Type.String({ description: 'a protobuf JSON duration, e.g. "1.250s"' });
const Time = Type.String({ format: 'date-time' });

const ExecutionView = Type.Object(
  {
    id: KeyView,
    spec: Type.Object({
      launch_plan: Type.Object({
        resource_type: Type.Literal('LAUNCH_PLAN'),
        project: Type.String(),
        domain: Type.String(),
        name: Type.String({ description: 'The workflow' }),
        version: Type.String({ description: 'Its version' }),
      }),
      metadata: Type.Object({
        mode: Type.String({ enum: ['MANUAL', 'RELAUNCH', 'CHILD_WORKFLOW', 'RECOVERED'] }),
        reference_execution: Type.Optional(KeyView),
        parent_node_execution: Type.Optional(Type.Object({ node_id: Type.String(), execution_id: KeyView })),
      }),
    }),
    closure: Type.Object({
      phase: ExecutionPhaseView,
      started_at: Type.Optional(Time),
      duration: Duration,
      created_at: Time,
      updated_at: Time,
      error: Type.Optional(ErrorView),
      abort_metadata: Type.Optional(Type.Object({ cause: Type.String(), principal: Type.String() })),
    }),
  },
  { description: "An execution, as FlyteAdmin's Execution in JSON" },
);

const AttemptView = Type.Object({
  attempt: Type.Integer(),
  phase: NodePhaseView,
  started_at: Time,
  duration: Duration,
  invocation_id: Type.Union([Type.String(), Type.Null()]),
  error: Type.Optional(ErrorView),
});

const NodeExecutionView = Type.Object(
  {
    id: Type.Object({ node_id: Type.String(), execution_id: KeyView }),
    metadata: Type.Object({
      parent_node_id: Type.Optional(Type.String({ description: 'The map node, for a map element' })),
      item: Type.Optional(Type.Integer({ description: "A map element's index" })),
      is_parent_node: Type.Boolean(),
      spec_node_id: Type.String(),
    }),
    closure: Type.Object({
      phase: NodePhaseView,
      started_at: Type.Optional(Time),
      duration: Duration,
      created_at: Time,
      updated_at: Time,
      error: Type.Optional(ErrorView),
      workflow_node_metadata: Type.Optional(Type.Object({ execution_id: KeyView })),
    }),
    function: Type.Optional(Type.Object({ name: Type.String(), version: Type.Union([Type.Integer(), Type.Null()]) })),
    attempts: Type.Array(AttemptView),
    invocation_ids: Type.Array(Type.String(), {
      description: "Every attempt's invocation, in order (logs: GET /v1/invocations/{id}/logs)",
    }),
    cache_hit: Type.Boolean(),
  },
  { description: "A node (or a map element) of an execution, as FlyteAdmin's NodeExecution, with Savassan's details" },
);

const IdAnswer = Type.Object({ id: KeyView });

const LaunchBody = Type.Object(
  {
    project: label('project'),
    domain: label('domain'),
    name: Type.Optional(label('execution name (default: a generated one)')),
    org: Type.Optional(Type.String({ description: 'ignored' })),
    spec: Type.Object(
      {
        launch_plan: Type.Object(
          {
            name: Type.String({ maxLength: 200, description: 'The workflow to run' }),
            version: Type.Optional(
              Type.Union([Type.String({ maxLength: 20 }), Type.Integer({ minimum: 1 })], {
                description: 'Its version (a number; default or empty: the latest)',
              }),
            ),
          },
          { additionalProperties: true, description: "A launch plan's identifier: the workflow's name and version" },
        ),
      },
      { additionalProperties: true },
    ),
    inputs: Type.Optional(
      Type.Object(
        {},
        {
          additionalProperties: true,
          description:
            'The inputs: plain JSON by name, or a Flyte literal map {"literals": {NAME: LITERAL}} (primitives, ' +
            'generic structs, collections, maps, none)',
        },
      ),
    ),
  },
  {
    additionalProperties: false,
    examples: [
      { project: 'savassan', domain: 'development', spec: { launch_plan: { name: 'pipeline' } }, inputs: { x: 3 } },
    ],
  },
);

const RelaunchBody = Type.Object(
  { id: Key, name: Type.Optional(label('new execution name (default: a generated one)')) },
  { additionalProperties: false },
);

const ListQuery = Type.Object(
  {
    limit: Type.Optional(QueryCount),
    token: Type.Optional(Type.String({ maxLength: 200, description: 'the previous page\'s "token"' })),
    workflow: Type.Optional(Type.String({ maxLength: 200, description: 'only executions of this workflow' })),
  },
  { additionalProperties: false, description: 'limit: how many, newest first (default 50, at most 1000)' },
);

const NodeListQuery = Type.Object(
  {
    limit: Type.Optional(QueryCount),
    token: Type.Optional(Type.String({ maxLength: 200, description: 'the previous page\'s "token"' })),
  },
  {
    additionalProperties: false,
    description: `limit: how many, in run order (default ${nodeExecutionPageDefault}, at most ${nodeExecutionPageMax})`,
  },
);

const TerminateBody = Type.Object(
  { cause: Type.Optional(Type.String({ maxLength: 1000, description: 'why (kept as the abort cause)' })) },
  { additionalProperties: true },
);

function launchVersion(version: string | number | undefined): number | undefined {
  if (version === undefined || version === '') return undefined;
  if (typeof version === 'number') return version;
  if (!/^[1-9][0-9]{0,8}$/.test(version)) {
    throw new PlatformError('BAD_REQUEST', `spec.launch_plan.version must be a version number, got ${version}`);
  }
  return Number(version);
}

const notFound = flyteErrorResponse('NOT_FOUND: no execution of that id');

/**
 * The Flyte-shaped execution routes, for `app.register`.
 *
 * @example
 * // POST /api/v1/executions {"project": "savassan", "domain": "development",
 * //   "spec": {"launch_plan": {"name": "pipeline"}}, "inputs": {"x": 3}} → {"id": {"project", "domain", "name"}}
 * // GET /api/v1/executions/savassan/development/NAME → {"id", "spec", "closure": {"phase": "SUCCEEDED", …}}
 * await app.register(executionRoutes({ backend }));
 */
export function executionRoutes(options: ExecutionRoutesOptions): FastifyPluginAsync {
  const { backend } = options;
  return (plugin) => {
    plugin.setErrorHandler((err, request, reply) => {
      const unknownQuery =
        (err as Partial<FastifyError>).validationContext === 'querystring' ? unknownQueryError(request) : null;
      const answer = flyteErrorAnswer(unknownQuery ?? toPlatformError(err));
      return reply.code(answer.status).headers(answer.headers).send(answer.body);
    });
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.post(
      '/api/v1/executions',
      {
        bodyLimit: maxEventBytes,
        schema: {
          summary:
            'Launch an execution of a workflow (its latest version, or spec.launch_plan.version), as FlyteAdmin ' +
            'CreateExecution: the inputs are checked against the declared types',
          body: LaunchBody,
          response: {
            200: IdAnswer,
            400: flyteErrorResponse('BAD_REQUEST: an input missing or of the wrong type (the message names it)'),
            404: flyteErrorResponse('NOT_FOUND: no workflow (or version) of that name'),
            409: flyteErrorResponse('CONFLICT: an execution of that name exists'),
          },
        },
      },
      async (request) => {
        const { body } = request;
        const id = await backend.launch({
          project: body.project,
          domain: body.domain,
          name: body.name,
          workflow: body.spec.launch_plan.name,
          version: launchVersion(body.spec.launch_plan.version),
          inputs: launchInputsToJson(body.inputs),
        });
        return { id };
      },
    );

    app.post(
      '/api/v1/executions/relaunch',
      {
        schema: {
          summary: 'Run an execution again: the same workflow version with the same inputs, as a new execution',
          body: RelaunchBody,
          response: { 200: IdAnswer, 404: notFound, 409: flyteErrorResponse('CONFLICT: the new name is in use') },
        },
      },
      async (request) => ({ id: await backend.relaunch(request.body.id, request.body.name) }),
    );

    app.post(
      '/api/v1/executions/recover',
      {
        schema: {
          summary:
            'Recover an execution: a new execution of the same workflow version and inputs that takes the outputs ' +
            'of the nodes that succeeded (phase RECOVERED) and runs the rest',
          body: RelaunchBody,
          response: { 200: IdAnswer, 404: notFound, 409: flyteErrorResponse('CONFLICT: the new name is in use') },
        },
      },
      async (request) => ({ id: await backend.recover(request.body.id, request.body.name) }),
    );

    app.get(
      '/api/v1/executions/:project/:domain/:name',
      {
        schema: {
          summary: 'Get an execution: its phase, times, error, and how it was started',
          params: Key,
          response: { 200: ExecutionView, 404: notFound },
        },
      },
      (request) => backend.get(request.params),
    );

    app.get(
      '/api/v1/executions/:project/:domain',
      {
        schema: {
          summary: 'List the executions of a project and domain, newest first, a page at a time',
          params: ProjectDomain,
          querystring: ListQuery,
          response: {
            200: Type.Object({
              executions: Type.Array(ExecutionView),
              token: Type.String({ description: 'Pass as ?token= for the next page; empty: no more' }),
            }),
          },
        },
      },
      (request) =>
        backend.list(request.params.project, request.params.domain, {
          limit: queryCount(request.query.limit, 'limit', 50, 1000),
          token: request.query.token,
          workflow: request.query.workflow,
        }),
    );

    app.delete(
      '/api/v1/executions/:project/:domain/:name',
      {
        // The body is optional (FlyteAdmin's clients send one, curl -X DELETE does not).
        preValidation: (request, _reply, done) => {
          request.body ??= {};
          done();
        },
        schema: {
          summary: 'Terminate an execution: its running nodes are aborted; it ends ABORTED',
          params: Key,
          body: TerminateBody,
          response: {
            200: Type.Object({}, { additionalProperties: false }),
            404: notFound,
            409: flyteErrorResponse('CONFLICT: the execution has ended already'),
          },
        },
      },
      async (request) => {
        await backend.terminate(request.params, request.body?.cause ?? 'terminated');
        return {};
      },
    );

    app.get(
      '/api/v1/node_executions/:project/:domain/:name',
      {
        schema: {
          summary:
            "An execution's nodes: phase, attempts and their invocations (a map node's elements each as a node " +
            'of their own, with parent_node_id)',
          params: Key,
          querystring: NodeListQuery,
          response: {
            200: Type.Object({
              node_executions: Type.Array(NodeExecutionView),
              token: Type.String({ description: 'Pass as ?token= for the next page; empty: no more' }),
            }),
            400: flyteErrorResponse('BAD_REQUEST: a limit out of range or a token no page gave'),
            404: notFound,
          },
        },
      },
      async (request) =>
        backend.nodeExecutionPage(request.params, {
          limit: queryCount(request.query.limit, 'limit', nodeExecutionPageDefault, nodeExecutionPageMax),
          token: request.query.token,
        }),
    );

    app.get(
      '/api/v1/data/executions/:project/:domain/:name',
      {
        schema: {
          summary: "An execution's inputs (defaults applied), and its outputs once it succeeded (null before)",
          params: Key,
          response: {
            200: Type.Object({
              inputs: Type.Object({}, { additionalProperties: true }),
              outputs: Type.Unknown(),
            }),
            404: notFound,
          },
        },
      },
      (request) => backend.data(request.params),
    );
    return Promise.resolve();
  };
}
