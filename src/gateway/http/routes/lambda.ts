// The AWS Lambda API (`/2015-03-31/...`, `/2019-09-25/...` for event invoke configs) on the gateway's port, so the
// AWS SDKs and CLI work against Savassan unchanged. Paths, status codes and shapes follow Lambda's service model
// (botocore `lambda/2015-03-31`). Savassan's model underneath: every deploy is an immutable, numbered version that
// becomes current; Lambda's `$LATEST` is the current version (the `live` alias), `PublishVersion` names it, and
// settings that live with a version (environment, timeout, retries, destinations) change by deploying the same code
// with the new settings.
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { PlatformError } from '../../../core/errors.js';
import { maxEventBytes } from '../../../core/function-config.js';
import type { FunctionConfigPatch } from '../../../core/function-config-patch.js';
import { functionArn, parseFunctionReference } from '../../../core/lambda-arn.js';
import type { LambdaArnScope } from '../../../core/lambda-arn.js';
import type { BlobStore } from '../../../core/ports/blob-store.js';
import type { MetadataStore } from '../../../core/ports/metadata-store.js';
import { weightsToRecord } from '../../../core/traffic.js';
import type { Alias, FunctionRecord, FunctionVersion } from '../../../core/types.js';
import { blobKeys, liveAlias } from '../../../core/types.js';
import type { AsyncInvocations } from '../../../events/async-invocations.js';
import type { Deployer } from '../../deployer.js';
import type { FunctionResolver } from '../../function-resolver.js';
import type { InvocationResult, Invoker } from '../../invoker.js';
import type { GatewayMetrics } from '../../metrics.js';
import type { Traffic } from '../../traffic.js';
import { callerGone, requestHeaders } from '../invoke-route.js';
import { sigV4OnRequest, sigV4PreHandler } from '../sigv4.js';
import { LambdaException, lambdaErrorAnswer } from './lambda-errors.js';
import type { Tracer } from '../../../core/ports/tracer.js';
import { invokeWithinSpan } from '../invoke-span.js';

export interface LambdaRoutesOptions {
  invoker: Invoker;
  deployer: Deployer;
  traffic: Traffic;
  resolver: FunctionResolver;
  metadata: MetadataStore;
  blobStore: BlobStore;
  metrics: GatewayMetrics;
  asyncInvocations: AsyncInvocations;
  scope: LambdaArnScope;
  /** The platform's API keys: where there are any, requests must be signed with an access key pair among them. */
  apiKeys: readonly string[];
  /** Traces: when on, each Invoke gets a server span continuing the request's `traceparent`. */
  tracer?: Tracer | undefined;
}

const latest = '$LATEST';
const maxCodeRequestBytes = 70 * 1024 * 1024;
/** How much of an invocation's log `X-Amz-Log-Type: Tail` returns, as Lambda does. */
const tailBytes = 4096;
/** How long a Tail invoke waits for the invocation's log to be shipped to the blob store. */
const logShipWaitMs = 3000;

/** Lambda runtime identifiers → Savassan runtimes. `nodejs22.x` runs on Node 24, the nearest newer one. */
const runtimeOf: Record<string, string> = {
  'nodejs20.x': 'nodejs20',
  'nodejs22.x': 'nodejs24',
  'nodejs24.x': 'nodejs24',
};
const lambdaRuntimeOf: Record<string, string> = { nodejs20: 'nodejs20.x', nodejs24: 'nodejs24.x' };

type Json = Record<string, unknown>;

/** Lambda's limit on `X-Amz-Client-Context`, base64 as sent. */
const maxClientContextBytes = 3583;

/**
 * `X-Amz-Client-Context` as the handler gets it: base64 of a JSON object, decoded to its JSON text; undefined when
 * absent. InvalidParameterValueException (400) when it is too long, not base64 or not a JSON object.
 */
export function clientContextOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (header.length > maxClientContextBytes) {
    throw new PlatformError('BAD_REQUEST', `X-Amz-Client-Context may be at most ${maxClientContextBytes} bytes`);
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(header)) {
    throw new PlatformError('BAD_REQUEST', 'X-Amz-Client-Context must be base64');
  }
  const text = Buffer.from(header, 'base64').toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new PlatformError('BAD_REQUEST', 'X-Amz-Client-Context must be the base64 of a JSON object');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new PlatformError('BAD_REQUEST', 'X-Amz-Client-Context must be the base64 of a JSON object');
  }
  return text;
}

/**
 * The Lambda API routes, for `app.register`.
 *
 * @example
 * // new LambdaClient({ endpoint: 'http://127.0.0.1:8080', region: 'us-east-1', credentials })
 * // POST /2015-03-31/functions/shop/invocations?Qualifier=beta  (X-Amz-Invocation-Type: RequestResponse)
 * //   → 200, the result; X-Amz-Executed-Version: 2
 * await app.register(lambdaRoutes(options));
 */
export function lambdaRoutes(options: LambdaRoutesOptions): FastifyPluginAsync {
  const { invoker, deployer, traffic, resolver, metadata, blobStore, metrics, asyncInvocations, scope } = options;
  const arn = (name: string, qualifier?: string | number) => functionArn(name, qualifier, scope);

  const requireFunction = async (name: string): Promise<FunctionRecord> => {
    const fn = await metadata.getFunction(name);
    if (fn === null) throw new PlatformError('NOT_FOUND', `Function not found: ${arn(name)}`);
    return fn;
  };

  /** The version a qualifier names: `$LATEST` (or none) the current one, a number that version, an alias its primary. */
  const versionOf = async (name: string, qualifier: string | undefined): Promise<FunctionVersion> => {
    const fn = await requireFunction(name);
    let number = fn.currentVersion;
    if (qualifier !== undefined && qualifier !== latest) {
      if (/^[0-9]+$/.test(qualifier)) number = Number(qualifier);
      else number = primaryOf(await traffic.getAlias(name, qualifier)).version;
    }
    const version = await metadata.getVersion(name, number);
    if (version === null) throw new PlatformError('NOT_FOUND', `Function not found: ${arn(name, qualifier)}`);
    return version;
  };

  const configuration = (version: FunctionVersion, shownAs: string | number): Json => {
    const { config } = version;
    return {
      FunctionName: version.functionName,
      // As Lambda names them: `$LATEST` by the unqualified ARN, a version by its qualified one.
      FunctionArn: shownAs === latest ? arn(version.functionName) : arn(version.functionName, shownAs),
      Runtime: lambdaRuntimeOf[config.runtime] ?? config.runtime,
      Role: `arn:aws:iam::${scope.accountId}:role/savassan`,
      Handler: config.handler,
      CodeSize: version.codeSizeBytes,
      Description: '',
      Timeout: config.timeoutSeconds,
      MemorySize: config.memoryMB,
      LastModified: lambdaTime(version.createdAt),
      CodeSha256: Buffer.from(version.codeSha256, 'hex').toString('base64'),
      Version: String(shownAs),
      Environment: { Variables: config.env },
      State: 'Active',
      LastUpdateStatus: 'Successful',
      PackageType: 'Zip',
      Architectures: [process.arch === 'arm64' ? 'arm64' : 'x86_64'],
      RevisionId: version.contentHash.slice(0, 32),
    };
  };

  const aliasConfiguration = (alias: Alias): Json => {
    const primary = primaryOf(alias);
    const additional = Object.fromEntries(
      Object.entries(weightsToRecord(alias.weights)).filter(([version]) => Number(version) !== primary.version),
    );
    return {
      AliasArn: arn(alias.functionName, alias.name),
      Name: alias.name,
      FunctionVersion: String(primary.version),
      Description: '',
      ...(Object.keys(additional).length === 0 ? {} : { RoutingConfig: { AdditionalVersionWeights: additional } }),
      RevisionId: createHash('sha256').update(alias.updatedAt.toISOString()).digest('hex').slice(0, 32),
    };
  };

  /** Deploys the current code again with changed settings: the new version becomes current. */
  const redeploy = async (name: string, patch: FunctionConfigPatch): Promise<FunctionVersion> => {
    const current = await versionOf(name, undefined);
    const code = await blobStore.get(blobKeys.code(current.codeSha256));
    if (code === null) throw new PlatformError('INTERNAL', `the code of ${name} version ${current.version} is gone`);
    return (await deployer.deploy(name, code, patch)).version;
  };

  const aliasWeights = async (name: string, body: Json, current: Alias | null) => {
    const fn = await requireFunction(name);
    const additional = routingWeights(body['RoutingConfig']) ?? (current === null ? {} : undefined);
    let primary = optionalString(body, 'FunctionVersion');
    if (primary === latest) primary = String(fn.currentVersion);
    if (primary === undefined && current === null) throw invalid('FunctionVersion is required');
    const primaryVersion = primary ?? String(primaryOf(current as Alias).version);
    let extra: Record<string, number>;
    if (additional === undefined) {
      extra = Object.fromEntries(
        Object.entries(weightsToRecord((current as Alias).weights)).filter(([v]) => v !== primaryVersion),
      );
    } else {
      extra = additional;
    }
    const share = Object.values(extra).reduce((sum, w) => sum + w, 0);
    if (extra[primaryVersion] !== undefined)
      throw invalid('RoutingConfig may not name the alias FunctionVersion itself');
    if (share >= 1) throw invalid('AdditionalVersionWeights must sum to less than 1');
    return { [primaryVersion]: 1 - share, ...extra };
  };

  return (plugin: FastifyInstance) => {
    plugin.setErrorHandler((err, _request, reply) => {
      const answer = lambdaErrorAnswer(err);
      return reply.code(answer.status).headers(answer.headers).send(answer.body);
    });
    // Bodies arrive as bytes: an invocation's payload goes to the sandbox as it came, and JSON requests are parsed
    // here so that a malformed one is a Lambda error, not Fastify's.
    plugin.removeAllContentTypeParsers();
    plugin.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxCodeRequestBytes }, (_request, body, done) => {
      done(null, body);
    });
    // Where the platform has API keys, every request carries a valid AWS Signature Version 4 (sigv4.ts): what can be
    // judged from the headers before the body is read, the rest once it is.
    plugin.addHook('onRequest', sigV4OnRequest(options.apiKeys));
    plugin.addHook('preHandler', sigV4PreHandler(options.apiKeys));
    // Left out of `/v1/openapi.json` (Lambda's own model describes these routes); query parameters are read by hand.
    const hidden = () => ({ hide: true, querystring: { type: 'object', additionalProperties: true } });

    plugin.post(
      '/2015-03-31/functions/:FunctionName/invocations',
      // A little over the limit is read whole and refused with a 413 the SDK can read (an answer before the body
      // is read closes the connection under the client's upload).
      { schema: hidden(), bodyLimit: maxEventBytes + 2 * 1024 * 1024 },
      async (request, reply) => {
        const { name, qualifier } = target(request);
        const payload = invocationPayload(request.body);
        const type = headerOf(request, 'x-amz-invocation-type') ?? 'RequestResponse';
        const logType = headerOf(request, 'x-amz-log-type') ?? 'None';
        if (logType !== 'None' && logType !== 'Tail') throw invalid(`X-Amz-Log-Type must be None or Tail`);
        const clientContext = clientContextOf(headerOf(request, 'x-amz-client-context'));
        const savassanQualifier = qualifier === undefined || qualifier === latest ? undefined : qualifier;
        if (type === 'DryRun') {
          await resolver.resolve(name, savassanQualifier);
          return send(reply, 204, null, { 'x-amz-executed-version': executedVersion(qualifier, null) });
        }
        if (type === 'Event') {
          const queued = await asyncInvocations.submit(name, payload.toString('utf8'), {
            qualifier: savassanQualifier,
          });
          return send(reply, 202, null, {
            'x-amz-executed-version': executedVersion(qualifier, null),
            'x-amzn-requestid': queued.id,
          });
        }
        if (type !== 'RequestResponse') throw invalid('X-Amz-Invocation-Type must be RequestResponse, Event or DryRun');
        const started = performance.now();
        let result: InvocationResult;
        try {
          const span = {
            method: 'POST',
            route: '/2015-03-31/functions/{FunctionName}/invocations',
            path: (request.raw.url ?? '').split('?', 1)[0] ?? '',
            functionName: name,
            traceparent: request.headers.traceparent,
          };
          result = await invokeWithinSpan(options.tracer, span, (trace) =>
            invoker.invoke(name, payload, callerGone(reply.raw), {
              qualifier: savassanQualifier,
              header: requestHeaders(request.headers),
              clientContext,
              trace,
            }),
          );
        } catch (err) {
          const error = PlatformError.from(err);
          metrics.rejected(error.code);
          if (error.code !== 'FUNCTION_INIT_ERROR') throw error;
          // A function that fails to load is the function's error, as Lambda answers it.
          const body = functionError('Runtime.InitError', error.rawMessage, undefined, error.details);
          return send(reply, 200, body, {
            'x-amz-function-error': 'Unhandled',
            'x-amz-executed-version': executedVersion(qualifier, null),
          });
        }
        metrics.observe(result, (performance.now() - started) / 1000);
        const headers: Record<string, string> = {
          'x-amz-executed-version': executedVersion(qualifier, result),
          'x-amzn-requestid': result.invocationId,
          'x-savassan-invocation-id': result.invocationId,
        };
        if (logType === 'Tail') headers['x-amz-log-result'] = await logTail(result);
        const { outcome } = result;
        if (outcome.status === 'success') {
          return send(reply, 200, Buffer.from(outcome.payloadJson ?? Buffer.from('null')), headers);
        }
        headers['x-amz-function-error'] = 'Unhandled';
        const errorType =
          outcome.status === 'error'
            ? (outcome.error?.name ?? 'Error')
            : { timeout: 'Sandbox.Timedout', crash: 'Runtime.ExitError', oom: 'Runtime.OutOfMemory' }[outcome.status];
        const message =
          outcome.status === 'timeout'
            ? `Task timed out after ${outcome.durationMs.toFixed(0)} ms`
            : (outcome.error?.message ?? outcome.status);
        return send(reply, 200, functionError(errorType, message, outcome.error?.stack), headers);
      },
    );

    /** The last 4 KB of an invocation's log, base64; Agents ship logs off the invocation's path, so wait for it. */
    const logTail = async (result: InvocationResult): Promise<string> => {
      const key = result.outcome.logKey;
      if (key === null) return '';
      const until = Date.now() + logShipWaitMs;
      for (;;) {
        const log = await blobStore.get(key);
        if (log !== null) return Buffer.from(log.subarray(Math.max(0, log.byteLength - tailBytes))).toString('base64');
        if (Date.now() > until) return '';
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    };

    plugin.post('/2015-03-31/functions', { schema: hidden() }, async (request, reply) => {
      const body = jsonBody(request);
      const name = requiredString(body, 'FunctionName');
      const { name: plain } = parseFunctionReference(name);
      if (body['PackageType'] !== undefined && body['PackageType'] !== 'Zip') throw invalid('only PackageType Zip');
      const code = zipFile(body['Code']);
      if ((await metadata.getFunction(plain)) !== null) {
        throw new PlatformError('CONFLICT', `Function already exist: ${plain}`);
      }
      const result = await deployer.deploy(plain, code, configPatch(body));
      const publish = body['Publish'] === true;
      return send(reply, 201, configuration(result.version, publish ? result.version.version : latest));
    });

    plugin.get('/2015-03-31/functions', { schema: hidden() }, async (request, reply) => {
      const query = request.query as Record<string, string | undefined>;
      const functions = (await metadata.listFunctions()).sort((a, b) => (a.name < b.name ? -1 : 1));
      if (query['FunctionVersion'] !== undefined && query['FunctionVersion'] !== 'ALL') {
        throw invalid('FunctionVersion must be ALL');
      }
      if (query['FunctionVersion'] === undefined) {
        // One configuration per function: only the page's versions are read.
        const page = paginate(functions, query, (fn) => arn(fn.name));
        const versions = await Promise.all(page.items.map((fn) => metadata.getVersion(fn.name, fn.currentVersion)));
        const items = versions.flatMap((v) => (v === null ? [] : [configuration(v, latest)]));
        return send(reply, 200, { Functions: items, ...page.next });
      }
      // ALL: each function's $LATEST, then its versions.
      const configurations: Json[] = [];
      for (const fn of functions) {
        const current = await metadata.getVersion(fn.name, fn.currentVersion);
        if (current !== null) configurations.push(configuration(current, latest));
        const versions = (await metadata.listVersions(fn.name)).sort((a, b) => a.version - b.version);
        configurations.push(...versions.map((v) => configuration(v, v.version)));
      }
      const page = paginate(configurations, query, (c) => String(c['FunctionArn']));
      return send(reply, 200, { Functions: page.items, ...page.next });
    });

    plugin.get('/2015-03-31/functions/:FunctionName', { schema: hidden() }, async (request, reply) => {
      const { name, qualifier } = target(request);
      const version = await versionOf(name, qualifier);
      return send(reply, 200, {
        Configuration: configuration(version, shownAs(qualifier, version)),
        Code: { RepositoryType: 'S3' },
      });
    });

    plugin.get('/2015-03-31/functions/:FunctionName/configuration', { schema: hidden() }, async (request, reply) => {
      const { name, qualifier } = target(request);
      const version = await versionOf(name, qualifier);
      return send(reply, 200, configuration(version, shownAs(qualifier, version)));
    });

    plugin.delete('/2015-03-31/functions/:FunctionName', { schema: hidden() }, async (request, reply) => {
      const { name, qualifier } = target(request);
      if (qualifier !== undefined) throw invalid('versions are immutable and kept; delete the function as a whole');
      await requireFunction(name);
      await deployer.remove(name);
      return send(reply, 204, null);
    });

    plugin.put('/2015-03-31/functions/:FunctionName/code', { schema: hidden() }, async (request, reply) => {
      const { name, qualifier } = target(request);
      if (qualifier !== undefined) throw invalid('UpdateFunctionCode takes no qualifier');
      const body = jsonBody(request);
      if (body['DryRun'] === true) throw invalid('DryRun is not supported: a deploy always loads the code for real');
      await requireFunction(name);
      const result = await deployer.deploy(name, zipFile(body), {});
      return send(
        reply,
        200,
        configuration(result.version, body['Publish'] === true ? result.version.version : latest),
      );
    });

    plugin.put('/2015-03-31/functions/:FunctionName/configuration', { schema: hidden() }, async (request, reply) => {
      const { name, qualifier } = target(request);
      if (qualifier !== undefined) throw invalid('UpdateFunctionConfiguration takes no qualifier');
      const version = await redeploy(name, configPatch(jsonBody(request)));
      return send(reply, 200, configuration(version, latest));
    });

    plugin.post('/2015-03-31/functions/:FunctionName/versions', { schema: hidden() }, async (request, reply) => {
      const { name } = target(request);
      const body = jsonBody(request);
      const version = await versionOf(name, undefined);
      const expected = optionalString(body, 'CodeSha256');
      if (expected !== undefined && expected !== Buffer.from(version.codeSha256, 'hex').toString('base64')) {
        throw invalid('CodeSha256 does not match the code of $LATEST');
      }
      return send(reply, 201, configuration(version, version.version));
    });

    plugin.get('/2015-03-31/functions/:FunctionName/versions', { schema: hidden() }, async (request, reply) => {
      const { name } = target(request);
      const current = await versionOf(name, undefined);
      const versions = await metadata.listVersions(name);
      const all = [
        configuration(current, latest),
        ...versions.sort((a, b) => a.version - b.version).map((v) => configuration(v, v.version)),
      ];
      const page = paginate(all, request.query as Record<string, string | undefined>, (c) => String(c['Version']));
      return send(reply, 200, { Versions: page.items, ...page.next });
    });

    plugin.post('/2015-03-31/functions/:FunctionName/aliases', { schema: hidden() }, async (request, reply) => {
      const { name } = target(request);
      const body = jsonBody(request);
      const aliasName = requiredString(body, 'Name');
      const existing = await traffic.getAlias(name, aliasName).catch(() => null);
      if (existing !== null || aliasName === liveAlias) {
        throw new PlatformError('CONFLICT', `Alias already exists: ${arn(name, aliasName)}`);
      }
      const weights = await aliasWeights(name, body, null);
      const { alias } = await traffic.putAlias(name, aliasName, { weights });
      return send(reply, 201, aliasConfiguration(alias));
    });

    plugin.get('/2015-03-31/functions/:FunctionName/aliases', { schema: hidden() }, async (request, reply) => {
      const { name } = target(request);
      const query = request.query as Record<string, string | undefined>;
      let aliases = (await traffic.listAliases(name)).filter((a) => a.name !== liveAlias);
      if (query['FunctionVersion'] !== undefined) {
        aliases = aliases.filter((a) => a.weights.some((w) => String(w.version) === query['FunctionVersion']));
      }
      const page = paginate(aliases, query, (a) => a.name);
      return send(reply, 200, { Aliases: page.items.map(aliasConfiguration), ...page.next });
    });

    plugin.get('/2015-03-31/functions/:FunctionName/aliases/:Name', { schema: hidden() }, async (request, reply) => {
      const { name } = target(request);
      const { Name } = request.params as { Name: string };
      return send(reply, 200, aliasConfiguration(await traffic.getAlias(name, Name)));
    });

    plugin.put('/2015-03-31/functions/:FunctionName/aliases/:Name', { schema: hidden() }, async (request, reply) => {
      const { name } = target(request);
      const { Name } = request.params as { Name: string };
      const current = await traffic.getAlias(name, Name);
      const weights = await aliasWeights(name, jsonBody(request), current);
      const { alias } = await traffic.putAlias(name, Name, { weights, stickyHeader: current.stickyHeader });
      return send(reply, 200, aliasConfiguration(alias));
    });

    plugin.delete('/2015-03-31/functions/:FunctionName/aliases/:Name', { schema: hidden() }, async (request, reply) => {
      const { name } = target(request);
      const { Name } = request.params as { Name: string };
      await traffic.deleteAlias(name, Name);
      return send(reply, 204, null);
    });

    const eventInvokeConfig = (version: FunctionVersion): Json => {
      const { config } = version;
      const destination = (value: string | null) =>
        value === null ? {} : { Destination: lambdaDestination(value, scope) };
      return {
        LastModified: version.createdAt.getTime() / 1000,
        FunctionArn: arn(version.functionName, latest),
        MaximumRetryAttempts: config.retries,
        MaximumEventAgeInSeconds: config.maxEventAgeSeconds,
        DestinationConfig: { OnSuccess: destination(config.onSuccess), OnFailure: destination(config.onFailure) },
      };
    };

    /**
     * Put (`replace`: a field left out returns to its default) or Update (a field left out is kept) the event invoke
     * config: the function's asynchronous settings, deployed as a new current version.
     */
    const setEventInvokeConfig = async (request: FastifyRequest, replace: boolean): Promise<Json> => {
      const { name, qualifier } = target(request);
      if (qualifier !== undefined && qualifier !== latest) throw invalid('only $LATEST has an event invoke config');
      const body = jsonBody(request);
      const unset = replace ? null : undefined;
      const destinations = (body['DestinationConfig'] ?? {}) as Json;
      const destinationOf = (field: string): string | null | undefined => {
        if (!replace && body['DestinationConfig'] === undefined) return undefined;
        const value = (destinations[field] as Json | undefined)?.['Destination'];
        if (value === undefined || value === null) return null;
        if (typeof value !== 'string') throw invalid(`DestinationConfig.${field}.Destination must be a string`);
        return savassanDestination(value);
      };
      const version = await redeploy(name, {
        retries: optionalNumber(body, 'MaximumRetryAttempts') ?? unset,
        maxEventAgeSeconds: optionalNumber(body, 'MaximumEventAgeInSeconds') ?? unset,
        onSuccess: destinationOf('OnSuccess'),
        onFailure: destinationOf('OnFailure'),
      });
      return eventInvokeConfig(version);
    };
    const eventInvokeConfigPath = '/2019-09-25/functions/:FunctionName/event-invoke-config';
    plugin.put(eventInvokeConfigPath, { schema: hidden() }, async (request, reply) =>
      send(reply, 200, await setEventInvokeConfig(request, true)),
    );
    plugin.post(eventInvokeConfigPath, { schema: hidden() }, async (request, reply) =>
      send(reply, 200, await setEventInvokeConfig(request, false)),
    );
    plugin.delete(eventInvokeConfigPath, { schema: hidden() }, async (request, reply) => {
      const { name } = target(request);
      await redeploy(name, { retries: null, maxEventAgeSeconds: null, onSuccess: null, onFailure: null });
      return send(reply, 204, null);
    });

    plugin.get(
      '/2019-09-25/functions/:FunctionName/event-invoke-config',
      { schema: hidden() },
      async (request, reply) => {
        const { name, qualifier } = target(request);
        return send(reply, 200, eventInvokeConfig(await versionOf(name, qualifier)));
      },
    );
    // Operations of the Lambda API not served here (layers, permissions, tags...) answer in Lambda's dialect too.
    for (const prefix of ['/2015-03-31/*', '/2019-09-25/*']) {
      plugin.all(prefix, { schema: hidden() }, (request) => {
        throw new LambdaException(
          'ResourceNotFoundException',
          404,
          `Savassan does not implement ${request.method} ${request.url.split('?')[0] ?? ''}`,
        );
      });
    }
    return Promise.resolve();
  };
}

/** The function a request names, and its qualifier (from `:suffix` or `?Qualifier=`, which must agree). */
function target(request: FastifyRequest): { name: string; qualifier: string | undefined } {
  const { FunctionName } = request.params as { FunctionName: string };
  const reference = parseFunctionReference(FunctionName);
  const query = (request.query as Record<string, unknown>)['Qualifier'];
  if (query !== undefined && typeof query !== 'string') throw invalid('give one Qualifier');
  if (query !== undefined && !/^(\$LATEST|[a-zA-Z0-9_-]{1,128})$/.test(query)) {
    throw invalid(`${JSON.stringify(query.slice(0, 130))} is not a version or alias`);
  }
  if (query !== undefined && reference.qualifier !== undefined && query !== reference.qualifier) {
    throw invalid('The derived qualifier from the function name does not match the specified qualifier.');
  }
  return { name: reference.name, qualifier: query ?? reference.qualifier };
}

function invalid(message: string): PlatformError {
  return new PlatformError('BAD_REQUEST', message);
}

function send(reply: FastifyReply, status: number, body: Json | Buffer | null, headers: Record<string, string> = {}) {
  void reply.code(status).headers(headers);
  if (body === null) return reply.send();
  if (Buffer.isBuffer(body)) return reply.type('application/json').send(body);
  return reply.type('application/json').send(JSON.stringify(body));
}

/** An invocation's payload: the bytes as they came, which must be JSON (an empty payload is `{}`). */
function invocationPayload(body: unknown): Buffer {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.alloc(0);
  if (bytes.byteLength > maxEventBytes) {
    throw new PlatformError(
      'PAYLOAD_TOO_LARGE',
      `Request must be smaller than ${maxEventBytes} bytes for the InvokeFunction operation`,
    );
  }
  if (bytes.toString('utf8').trim() === '') return Buffer.from('{}');
  try {
    JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new LambdaException('InvalidRequestContentException', 400, 'Could not parse request body into json');
  }
  return bytes;
}

function jsonBody(request: FastifyRequest): Json {
  const bytes = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
  if (bytes.byteLength === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new LambdaException('InvalidRequestContentException', 400, 'Could not parse request body into json');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new LambdaException('InvalidRequestContentException', 400, 'the request body must be a JSON object');
  }
  return parsed as Json;
}

function headerOf(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

function requiredString(body: Json, field: string): string {
  const value = optionalString(body, field);
  if (value === undefined) throw invalid(`${field} is required`);
  return value;
}

function optionalString(body: Json, field: string): string | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw invalid(`${field} must be a string`);
  return value;
}

function optionalNumber(body: Json, field: string): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') throw invalid(`${field} must be a number`);
  return value;
}

/** The zip of `Code` (CreateFunction) or of UpdateFunctionCode's body: base64 `ZipFile`, the only source here. */
function zipFile(code: unknown): Buffer {
  const zip = (code as Json | undefined)?.['ZipFile'];
  if (typeof zip !== 'string' || zip.length === 0) {
    throw invalid('give the code as ZipFile (S3 and image sources are not supported)');
  }
  return Buffer.from(zip, 'base64');
}

/** The settings of CreateFunction and UpdateFunctionConfiguration, as a deploy's patch. */
function configPatch(body: Json): FunctionConfigPatch {
  const patch: FunctionConfigPatch = {};
  const runtime = optionalString(body, 'Runtime');
  if (runtime !== undefined) {
    const mapped = runtimeOf[runtime];
    if (mapped === undefined) {
      throw invalid(`Runtime must be one of ${Object.keys(runtimeOf).join(', ')}, got ${JSON.stringify(runtime)}`);
    }
    patch.runtime = mapped;
  }
  const handler = optionalString(body, 'Handler');
  if (handler !== undefined) patch.handler = handler;
  const timeout = optionalNumber(body, 'Timeout');
  if (timeout !== undefined) patch.timeoutSeconds = timeout;
  const memory = optionalNumber(body, 'MemorySize');
  if (memory !== undefined) patch.memoryMB = memory;
  const environment = body['Environment'];
  if (environment !== undefined && environment !== null) {
    const variables = (environment as Json)['Variables'] ?? {};
    if (typeof variables !== 'object' || variables === null || Array.isArray(variables)) {
      throw invalid('Environment.Variables must be an object of strings');
    }
    patch.env = variables as Record<string, string>;
  }
  // Role and Description are taken and not kept: sandboxes have no IAM role, and versions no description.
  optionalString(body, 'Role');
  optionalString(body, 'Description');
  return patch;
}

function routingWeights(routing: unknown): Record<string, number> | undefined {
  if (routing === undefined || routing === null) return undefined;
  const weights = (routing as Json)['AdditionalVersionWeights'] ?? {};
  if (typeof weights !== 'object' || weights === null || Array.isArray(weights)) {
    throw invalid('RoutingConfig.AdditionalVersionWeights must be an object');
  }
  for (const [version, weight] of Object.entries(weights as Json)) {
    if (!/^[0-9]+$/.test(version) || typeof weight !== 'number' || !(weight > 0 && weight < 1)) {
      throw invalid('AdditionalVersionWeights maps version numbers to weights between 0 and 1');
    }
  }
  return weights as Record<string, number>;
}

/** The version an alias's `FunctionVersion` names: its largest weight (the lowest version on a tie). */
function primaryOf(alias: Alias): { version: number; weight: number } {
  let primary = alias.weights[0] as { version: number; weight: number };
  for (const w of alias.weights) if (w.weight > primary.weight) primary = w;
  return primary;
}

function shownAs(qualifier: string | undefined, version: FunctionVersion): string | number {
  return qualifier === undefined || qualifier === latest ? latest : version.version;
}

function executedVersion(qualifier: string | undefined, result: InvocationResult | null): string {
  if (qualifier === undefined || qualifier === latest) return latest;
  return result === null ? qualifier : String(result.version);
}

function functionError(errorType: string, errorMessage: string, stack: string | undefined, details?: Json): Json {
  const trace = typeof details?.['stack'] === 'string' ? details['stack'] : stack;
  return { errorType, errorMessage, trace: trace === undefined ? [] : trace.split('\n') };
}

/** Lambda's `LastModified`: ISO 8601 with milliseconds and a `+0000` offset. */
function lambdaTime(date: Date): string {
  return date.toISOString().replace('Z', '+0000');
}

/** A Lambda destination ARN → Savassan's destination (`function:NAME`, `queue:NAME`, or a URL as it is). */
function savassanDestination(value: string): string {
  const lambda = /^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:([^:]+)(?::.*)?$/.exec(value);
  if (lambda !== null) return `function:${lambda[1]}`;
  const sqs = /^arn:aws[a-zA-Z-]*:sqs:[a-z0-9-]+:\d{12}:(.+)$/.exec(value);
  if (sqs !== null) return `queue:${sqs[1]}`;
  if (/^https?:\/\//i.test(value)) return value;
  throw invalid(`destination ${JSON.stringify(value)} must be a Lambda function or SQS queue ARN, or a URL`);
}

function lambdaDestination(value: string, scope: LambdaArnScope): string {
  if (/^https?:\/\//i.test(value)) return value;
  if (value.startsWith('queue:')) return `arn:aws:sqs:${scope.region}:${scope.accountId}:${value.slice(6)}`;
  return functionArn(value.startsWith('function:') ? value.slice(9) : value, undefined, scope);
}

/** A page of `items` after `?Marker=` (the key of the last item of the previous page), at most `?MaxItems=`. */
function paginate<T>(
  items: T[],
  query: Record<string, string | undefined>,
  key: (item: T) => string,
): { items: T[]; next: { NextMarker?: string } } {
  const max = query['MaxItems'] === undefined ? 50 : Number(query['MaxItems']);
  if (!Number.isInteger(max) || max < 1 || max > 10000) throw invalid('MaxItems must be 1 to 10000');
  const marker = query['Marker'];
  let start = 0;
  if (marker !== undefined) {
    const at = items.findIndex((item) => key(item) === marker);
    if (at < 0) throw invalid('Marker does not name an item of this list');
    start = at + 1;
  }
  const page = items.slice(start, start + max);
  const last = page.at(-1);
  return { items: page, next: start + max < items.length && last !== undefined ? { NextMarker: key(last) } : {} };
}
