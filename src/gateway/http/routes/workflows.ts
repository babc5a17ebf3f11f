// `/v1/workflows`: deployed workflows (DAGs of functions), each an immutable series of versions of a spec. Running
// them is the Flyte-shaped `/api/v1/executions` (executions.ts).
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { maxWorkflowSpecBytes } from '../../../core/workflow-spec.js';
import type { WorkflowSummary, WorkflowVersionRecord } from '../../../core/ports/workflow-store.js';
import { errorResponse } from '../schemas.js';

/**
 * What the workflow routes need of the deployer: it checks a spec (BAD_REQUEST naming the node and the JSON path of
 * the first fault), stores it as the next version (unless it equals the latest) and registers it with the
 * execution backend.
 */
export interface WorkflowDeployerPort {
  deploy(name: string, spec: unknown): Promise<{ record: WorkflowVersionRecord; created: boolean }>;
  /** A version, or the latest; NOT_FOUND when there is none. */
  get(name: string, version?: number): Promise<WorkflowVersionRecord>;
  /** A workflow's versions, newest first (NOT_FOUND when there is none). */
  versions(name: string): Promise<WorkflowVersionRecord[]>;
  list(): Promise<WorkflowSummary[]>;
  /** NOT_FOUND when there is none. */
  delete(name: string): Promise<void>;
  /** Checks a spec as `deploy` would, storing nothing: its node count and an order the nodes can run in. */
  validate(name: string, spec: unknown): Promise<{ nodeCount: number; order: string[] }>;
}

export interface WorkflowRoutesOptions {
  deployer: WorkflowDeployerPort;
}

const WorkflowParams = Type.Object({
  name: Type.String({
    maxLength: 200,
    description: '1-63 lowercase letters, digits, dashes and underscores, starting with a letter or digit',
  }),
});

const VersionQuery = Type.Object(
  { version: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,8}$', description: 'a version number' })) },
  { additionalProperties: false },
);

const SpecBody = Type.Object(
  {},
  {
    additionalProperties: true,
    description:
      'A workflow spec: {"inputs": {NAME: TYPE}, "nodes": {ID: {"function": F, "input": ...}}, "output": ...}; ' +
      'references are strings `$.inputs.NAME`, `$.nodes.ID.output.PATH`, in a map node `$.item` and `$.index`',
    examples: [
      {
        inputs: { x: 'number' },
        nodes: {
          a: { function: 'double', input: { n: '$.inputs.x' } },
          b: { function: 'inc', input: { n: '$.nodes.a.output.n' } },
        },
        output: { result: '$.nodes.b.output.n' },
      },
    ],
  },
);

const Spec = Type.Object({}, { additionalProperties: true, description: 'The spec as deployed' });

const DeployAnswer = Type.Object({
  name: Type.String(),
  version: Type.Integer(),
  created: Type.Boolean({ description: 'false: the spec equals the latest version, which is answered' }),
  createdAt: Type.String({ format: 'date-time' }),
  spec: Spec,
});

const WorkflowSummaryView = Type.Object({
  name: Type.String(),
  latestVersion: Type.Integer(),
  description: Type.Union([Type.String(), Type.Null()]),
  nodeCount: Type.Integer(),
  createdAt: Type.String({ format: 'date-time', description: 'When its first version was deployed' }),
  updatedAt: Type.String({ format: 'date-time', description: 'When its latest version was deployed' }),
});

const WorkflowView = Type.Object({
  name: Type.String(),
  version: Type.Integer(),
  createdAt: Type.String({ format: 'date-time' }),
  spec: Spec,
  versions: Type.Array(Type.Object({ version: Type.Integer(), createdAt: Type.String({ format: 'date-time' }) }), {
    description: 'Every version, newest first',
  }),
});

const ValidateAnswer = Type.Object({
  valid: Type.Literal(true),
  nodeCount: Type.Integer(),
  order: Type.Array(Type.String(), { description: 'The node ids in an order they can run in' }),
});

const specBadRequest = errorResponse(
  'BAD_REQUEST: the spec is not valid JSON or not a valid workflow; the message names the node and the JSON path ' +
    '(a cycle, an unknown function, workflow, input or node, a type mismatch, an unknown field, a bad id or setting)',
);

function deployAnswer(record: WorkflowVersionRecord, created: boolean): Static<typeof DeployAnswer> {
  return {
    name: record.name,
    version: record.version,
    created,
    createdAt: record.createdAt.toISOString(),
    spec: JSON.parse(record.spec) as Record<string, unknown>,
  };
}

/**
 * The workflow routes, for `app.register`.
 *
 * @example
 * // PUT /v1/workflows/pipeline {"nodes": {"a": {"function": "double", "input": "$.inputs"}}}
 * //   → 201 {"name": "pipeline", "version": 1, "created": true, …}; the same again → 200 {"created": false, …}
 * // GET /v1/workflows/pipeline?version=1 → {"name": "pipeline", "version": 1, "spec": {…}, "versions": [...]}
 * await app.register(workflowRoutes({ deployer }));
 */
export function workflowRoutes(options: WorkflowRoutesOptions): FastifyPluginAsync {
  const { deployer } = options;
  return (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.put(
      '/v1/workflows/:name',
      {
        bodyLimit: maxWorkflowSpecBytes,
        schema: {
          summary:
            'Deploy a workflow: the spec is checked (every reference, function and sub-workflow, no cycles, declared ' +
            'types) and stored as a new immutable version, unless it equals the latest version',
          params: WorkflowParams,
          body: SpecBody,
          response: {
            200: { ...DeployAnswer, description: 'The spec equals the latest version: that version' },
            201: { ...DeployAnswer, description: 'A new version' },
            400: specBadRequest,
            413: errorResponse('PAYLOAD_TOO_LARGE: the spec is over 1 MiB'),
          },
        },
      },
      async (request, reply) => {
        const { record, created } = await deployer.deploy(request.params.name, request.body);
        return reply.code(created ? 201 : 200).send(deployAnswer(record, created));
      },
    );

    app.get(
      '/v1/workflows',
      {
        schema: {
          summary: 'Every workflow, by name, with its latest version',
          response: { 200: Type.Object({ workflows: Type.Array(WorkflowSummaryView) }) },
        },
      },
      async () => ({
        workflows: (await deployer.list()).map((w) => ({
          name: w.name,
          latestVersion: w.latestVersion,
          description: w.description,
          nodeCount: w.nodeCount,
          createdAt: w.createdAt.toISOString(),
          updatedAt: w.updatedAt.toISOString(),
        })),
      }),
    );

    app.get(
      '/v1/workflows/:name',
      {
        schema: {
          summary: 'Get a workflow: its latest version (or `?version=N`) and the list of its versions',
          params: WorkflowParams,
          querystring: VersionQuery,
          response: { 200: WorkflowView, 404: errorResponse('NOT_FOUND: no workflow (or version) of that name') },
        },
      },
      async (request) => {
        const { name } = request.params;
        const version = request.query.version === undefined ? undefined : Number(request.query.version);
        const record = await deployer.get(name, version);
        const versions = await deployer.versions(name);
        return {
          name: record.name,
          version: record.version,
          createdAt: record.createdAt.toISOString(),
          spec: JSON.parse(record.spec) as Record<string, unknown>,
          versions: versions.map((v) => ({ version: v.version, createdAt: v.createdAt.toISOString() })),
        };
      },
    );

    app.delete(
      '/v1/workflows/:name',
      {
        schema: {
          summary: 'Delete a workflow and every version; its ended executions stay',
          params: WorkflowParams,
          response: {
            204: Type.Null({ description: 'Deleted' }),
            404: errorResponse('NOT_FOUND: no workflow of that name'),
            409: errorResponse('CONFLICT: an unfinished execution runs a version of it'),
          },
        },
      },
      async (request, reply) => {
        await deployer.delete(request.params.name);
        return reply.code(204).send(null);
      },
    );

    app.post(
      '/v1/workflows/:name/validate',
      {
        bodyLimit: maxWorkflowSpecBytes,
        schema: {
          summary: 'Check a spec as a deploy would, storing nothing',
          params: WorkflowParams,
          body: SpecBody,
          response: { 200: ValidateAnswer, 400: specBadRequest },
        },
      },
      async (request) => {
        const { nodeCount, order } = await deployer.validate(request.params.name, request.body);
        return { valid: true as const, nodeCount, order };
      },
    );
    return Promise.resolve();
  };
}
