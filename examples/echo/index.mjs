// ES module, callback style: returns the event it was given plus a little about where it ran.
export function handler(event, context, callback) {
  callback(null, {
    event,
    functionName: context.functionName,
    memoryLimitInMB: context.memoryLimitInMB,
    remainingMs: context.getRemainingTimeInMillis(),
    greeting: process.env.GREETING ?? null,
  });
}
