// The trace context a handler receives (README "Traces"): the invocation's W3C `traceparent`, whose parent span is
// the Agent's handler-run span, and the same ids in AWS X-Ray's header form, as Lambda's `_X_AMZN_TRACE_ID`.

/** What the guest exposes of one invocation's trace context. */
export interface TraceContext {
  traceparent: string;
  xrayTraceId: string;
}

const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{8})([0-9a-f]{24})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * The context of a `traceparent` value, or null when it is not a valid W3C one (version `ff`, all-zero ids): the
 * handler then sees none.
 */
export function traceContextOf(traceparent: string): TraceContext | null {
  const match = traceparentPattern.exec(traceparent);
  if (match === null) return null;
  const [, version, epoch = '', rest = '', parent = '', flags = '00'] = match;
  if (version === 'ff' || /^0+$/.test(epoch + rest) || /^0+$/.test(parent)) return null;
  const sampled = Number.parseInt(flags, 16) & 1;
  return { traceparent, xrayTraceId: `Root=1-${epoch}-${rest};Parent=${parent};Sampled=${sampled}` };
}
