// `/v1/control-plane`: who leads the control plane, its followers and the cluster's members with their builds, and the
// two things a person asks of it: hand the lead to another manager, and upgrade the platform to another build.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { maxClusterIdLength } from '../../../core/cluster-checks.js';
import type { BuildInfo } from '../../../core/build-info.js';
import type { ControlPlaneApi, ControlPlaneView } from '../../../core/control-plane-view.js';
import { PlatformError } from '../../../core/errors.js';
import { errorResponse } from '../schemas.js';

/** The longest upgrade target (a version or a path), in characters. */
export const maxUpgradeTargetChars = 4096;

/** A manager id as the cluster takes it: no `/` (ids are etcd key segments), no white space or control characters. */
const managerIdPattern = /^[^\s/\p{Cc}]+$/u;

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T, description?: string) =>
  Type.Union([schema, Type.Null()], description === undefined ? {} : { description });

const BuildView = Type.Object(
  {
    version: Type.String({ description: 'The package version, `0.1.0`' }),
    build: Type.String({ description: 'The build id: the `build-id` file of the installation, `dev` without one' }),
    protocol: Type.Integer({ description: 'The control protocol it speaks; processes of different ones never mix' }),
  },
  { additionalProperties: false },
);

const UpgradeView = Type.Object(
  {
    target: Type.String({ description: 'What was asked for: a version or a path' }),
    to: { ...BuildView, description: 'The build the target resolved to' },
    from: Type.Array(BuildView, { description: 'The builds being replaced' }),
    state: Type.Enum(['running', 'succeeded', 'failed'], { type: 'string' }),
    step: Type.String({
      description: 'The step under way or, once failed, the step that failed (`start gateway 2 of 2`)',
    }),
    error: Type.Optional(Type.String({ description: 'Why it failed; the old generation keeps serving' })),
    started: Type.Array(Type.String(), { description: 'Processes started for the new build so far' }),
    retired: Type.Array(Type.String(), { description: 'Old processes stopped so far' }),
    toRetire: Type.Array(
      Type.Object(
        { id: Type.String(), role: Type.Enum(['manager', 'gateway'], { type: 'string' }) },
        { additionalProperties: false },
      ),
      { description: 'Old processes still to stop once the new build leads' },
    ),
    startedAt: Type.Number({ description: 'Epoch milliseconds' }),
    updatedAt: Type.Number({ description: 'Epoch milliseconds' }),
  },
  { additionalProperties: false, description: 'Where an upgrade stands' },
);

const ControlPlaneViewSchema = Type.Object(
  {
    mode: Type.Enum(['cluster', 'embedded'], { type: 'string' }),
    pool: Type.Enum(['leader', 'redis', 'memory'], {
      type: 'string',
      description: 'Where the warm pool lives: held by the leader, in Redis, or in memory (embedded mode)',
    }),
    leader: Nullable(
      Type.Object(
        {
          id: Type.String({ description: 'The leading manager (`embedded` in embedded mode)' }),
          since: Nullable(Type.String({ format: 'date-time' }), 'When it started to lead'),
          term: Type.Integer({ description: 'Grows with every election and handover' }),
          build: Nullable(BuildView, 'Null when its entry announces no well-formed build'),
          seq: Type.Integer({ description: 'The last change of its replicated state (0 without `--pool leader`)' }),
          loopDelayMs: Nullable(
            Type.Object(
              { p50: Type.Number(), p99: Type.Number(), max: Type.Number() },
              { additionalProperties: false },
            ),
            "Its event loop's delay over the last minute (ms); null before the first sample",
          ),
        },
        { additionalProperties: false },
      ),
      'Null while no manager leads',
    ),
    followersWanted: Type.Integer({ description: 'How many followers the leader keeps a copy of its state on' }),
    followers: Type.Array(
      Type.Object(
        {
          id: Type.String(),
          build: BuildView,
          appliedSeq: Type.Integer({ description: 'The last change it says it applied' }),
          lag: Type.Integer({ description: 'How many changes it is behind the leader' }),
          reportedMsAgo: Type.Number({ description: 'How long ago it last reported (ms)' }),
          since: Type.String({ format: 'date-time', description: 'Since when it follows' }),
        },
        { additionalProperties: false },
      ),
    ),
    members: Type.Array(
      Type.Object(
        {
          id: Type.String(),
          role: Type.Enum(['manager', 'gateway', 'agent'], { type: 'string' }),
          build: Nullable(BuildView, 'Null when its entry announces no well-formed build'),
          address: Type.String({
            description: 'Managers: the control address; gateways: the HTTP URL (or routing address); agents: theirs',
          }),
          leader: Type.Boolean(),
          follower: Type.Boolean(),
          compatible: Type.Boolean({ description: "Whether it speaks the leader's control protocol" }),
        },
        { additionalProperties: false },
      ),
      { description: 'Every manager, gateway and agent of the cluster, with the build it runs' },
    ),
    handover: Nullable(
      Type.Object(
        {
          state: Type.Enum(['running', 'done', 'failed'], { type: 'string' }),
          from: Type.String(),
          to: Type.String(),
          at: Type.String({ format: 'date-time' }),
          pausedMs: Type.Optional(Type.Number({ description: 'How long writes waited for it' })),
          error: Type.Optional(Type.String()),
        },
        { additionalProperties: false },
      ),
      'A handover under way, or the last one',
    ),
    upgrade: Nullable(UpgradeView, 'An upgrade under way, or the last one'),
  },
  { additionalProperties: false, description: 'The control plane: leader, followers, members and their builds' },
);

const HandoverBody = Type.Object(
  {
    to: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: maxClusterIdLength,
        description:
          'The manager to hand over to: a follower of the leader (default: the follower with the most changes ' +
          'applied). 1 to 200 characters, no "/", spaces or control characters',
      }),
    ),
  },
  { additionalProperties: false },
);

const HandoverView = Type.Object(
  {
    from: Type.String({ description: 'The manager that led' }),
    to: Type.String({ description: 'The manager that leads now' }),
    term: Type.Integer({ description: "The new leader's term" }),
    pausedMs: Type.Number({ description: 'How long pool and queue writes waited while the lead passed' }),
  },
  { additionalProperties: false },
);

const UpgradeBody = Type.Object(
  {
    to: Type.String({
      minLength: 1,
      maxLength: maxUpgradeTargetChars,
      description: 'The build to run: a version the infrastructure can install, or the path of an installed build',
    }),
  },
  { additionalProperties: false },
);

/**
 * The control plane's routes, for `app.register`. Like every route but the public ones, they need an API key where
 * the server has keys.
 *
 * @example
 * // GET /v1/control-plane → {"mode": "cluster", "pool": "leader", "leader": {"id": "manager-a", "term": 7, …}, …}
 * // POST /v1/control-plane/handover {"to": "manager-b"} → {"from": "manager-a", "to": "manager-b", "term": 8, "pausedMs": 12}
 * // POST /v1/control-plane/upgrade {"to": "0.2.0"} → 202 {"target": "0.2.0", "state": "running", "step": "…", …}
 * await app.register(controlPlaneRoutes(api));
 */
export function controlPlaneRoutes(api: ControlPlaneApi): FastifyPluginAsync {
  return (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.get(
      '/v1/control-plane',
      {
        schema: {
          summary:
            'The control plane: the leading manager (term, build, last change, event loop delay), its followers ' +
            'and how far behind they are, every member with its build, and the last handover and upgrade',
          description:
            'Embedded mode answers one process leading itself: `{"mode": "embedded", "pool": "memory", "leader": ' +
            '{"id": "embedded", "term": 1, …}, "followers": [], "members": [], …}`.',
          response: { 200: ControlPlaneViewSchema },
        },
      },
      async (): Promise<ControlPlaneView> => api.view(),
    );

    app.post(
      '/v1/control-plane/handover',
      {
        schema: {
          summary:
            'Hand the lead to another manager: writes pause, the leader sends its state to the target, which takes ' +
            'the lead over in one etcd transaction, then the paused writes go on at the new leader',
          // No body at all (Fastify validates it as null) is the same as `{}`.
          body: Type.Union([HandoverBody, Type.Null()], { description: 'May be left out: `{}`' }),
          response: {
            200: { ...HandoverView, description: 'Done: `to` leads' },
            400: errorResponse('BAD_REQUEST: a malformed manager id, or an unknown field'),
            409: errorResponse(
              'CONFLICT: no follower to hand over to, the target is not a follower, a handover or an upgrade is under ' +
                'way, or embedded mode (one process)',
            ),
          },
        },
      },
      async (request) => {
        const to = request.body?.to;
        if (to !== undefined && !managerIdPattern.test(to)) {
          throw new PlatformError(
            'BAD_REQUEST',
            `invalid manager id ${JSON.stringify(to)}: 1 to ${maxClusterIdLength} characters, no "/", spaces or ` +
              'control characters',
          );
        }
        return api.handover(to);
      },
    );

    app.post(
      '/v1/control-plane/upgrade',
      {
        schema: {
          summary:
            'Upgrade the platform: start managers and gateways of the build `to` names, hand the lead to a new ' +
            'manager, then stop the old processes. Answers at once; `GET /v1/control-plane` follows it (`upgrade`)',
          body: UpgradeBody,
          response: {
            202: { ...UpgradeView, description: 'Started: where it stands now' },
            400: errorResponse('BAD_REQUEST: no target, or one of the wrong length; a build of another protocol'),
            409: errorResponse('CONFLICT: an upgrade or a handover is under way, or embedded mode (restart instead)'),
          },
        },
      },
      async (request, reply) => reply.code(202).send(await api.upgrade(request.body.to)),
    );
    return Promise.resolve();
  };
}

/** What a single process says of itself as the control plane (`standaloneControlPlane`). */
export interface StandaloneControlPlaneOptions {
  /** When it started to lead: its start (default now). */
  startedAt?: Date | undefined;
  /** The build it runs; absent: shown as null. */
  build?: BuildInfo | undefined;
  /** Where the warm pool lives (default `memory`). */
  pool?: 'memory' | 'redis' | undefined;
  /** Its event loop's delay over the last minute; absent: shown as null. */
  loopDelay?: (() => ControlPlaneLeaderView['loopDelayMs']) | undefined;
}

type ControlPlaneLeaderView = NonNullable<ControlPlaneView['leader']>;

/** The id a single process leads under. */
export const standaloneLeaderId = 'embedded';

/**
 * The control plane of one process, embedded mode's: it leads from its start (term 1, no replicated changes), keeps
 * no followers, and refuses a handover or an upgrade with CONFLICT, saying what to do instead. A gateway given no
 * control plane answers with this one (without build and loop delay).
 *
 * @example
 * const api = standaloneControlPlane({ build: { version: '0.1.0', build: 'dev', protocol: 1 } });
 * (await api.view()).leader; // { id: 'embedded', term: 1, seq: 0, build: {…}, loopDelayMs: null, … }
 */
export function standaloneControlPlane(options: StandaloneControlPlaneOptions = {}): ControlPlaneApi {
  const since = (options.startedAt ?? new Date()).toISOString();
  const build = options.build === undefined ? null : { ...options.build };
  const pool = options.pool ?? 'memory';
  return {
    view: () =>
      Promise.resolve({
        mode: 'embedded',
        pool,
        leader: {
          id: standaloneLeaderId,
          since,
          term: 1,
          build: build === null ? null : { ...build },
          seq: 0,
          loopDelayMs: options.loopDelay?.() ?? null,
        },
        followersWanted: 0,
        followers: [],
        members: [],
        handover: null,
        upgrade: null,
      }),
    handover: () =>
      Promise.reject(
        new PlatformError('CONFLICT', 'embedded mode has one process: there is no other manager to hand over to'),
      ),
    upgrade: () =>
      Promise.reject(new PlatformError('CONFLICT', 'embedded mode upgrades by restarting with the new build')),
  };
}
