// The server span of an invocation that arrives through another door than the native invoke route (the Lambda API,
// function URLs): it continues the request's `traceparent` and is the parent of the invocation's spans.
import { PlatformError } from '../../core/errors.js';
import type { TraceSpan, Tracer } from '../../core/ports/tracer.js';
import type { InvocationResult } from '../invoker.js';

export interface InvokeSpanRequest {
  method: string;
  /** The route's pattern (`/2015-03-31/functions/{FunctionName}/invocations`): the span's name and `http.route`. */
  route: string;
  /** The request's path, without its query. */
  path: string;
  functionName: string;
  /** The request's `traceparent` header. */
  traceparent: string | string[] | undefined;
}

/** An HTTP server span for an invocation. */
export function startInvokeSpan(tracer: Tracer, request: InvokeSpanRequest): TraceSpan {
  const { method, route, path, functionName, traceparent } = request;
  return tracer.startSpan(`${method} ${route}`, {
    kind: 'server',
    parent: typeof traceparent === 'string' ? traceparent : undefined,
    attributes: {
      'http.request.method': method,
      'http.route': route,
      'url.path': path,
      'faas.invoked_name': functionName,
    },
  });
}

/**
 * Runs `invoke` within a server span when tracing is on (it gets the span to pass on as `InvokeRoute.trace`); with
 * tracing off it calls `invoke` straight away, with nothing made.
 */
export function invokeWithinSpan(
  tracer: Tracer | undefined,
  request: InvokeSpanRequest,
  invoke: (trace: TraceSpan | undefined) => Promise<InvocationResult>,
): Promise<InvocationResult> {
  if (tracer === undefined || !tracer.enabled) return invoke(undefined);
  return traced(startInvokeSpan(tracer, request), invoke);
}

async function traced(
  span: TraceSpan,
  invoke: (trace: TraceSpan) => Promise<InvocationResult>,
): Promise<InvocationResult> {
  try {
    const result = await invoke(span);
    span.setAttribute('faas.invocation_id', result.invocationId);
    if (result.outcome.status !== 'success') span.fail(`the invocation ended: ${result.outcome.status}`);
    return result;
  } catch (err) {
    span.fail(PlatformError.from(err).code);
    throw err;
  } finally {
    span.end();
  }
}
