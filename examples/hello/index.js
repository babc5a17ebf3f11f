// A Lambda-shaped function: export `handler(event, context)`. console output becomes the invocation's log.
exports.handler = async (event, context) => {
  const name = typeof event.name === 'string' ? event.name : 'world';
  console.log(`greeting ${name} from ${context.functionName} v${context.functionVersion}`);
  return { message: `Hello, ${name}!`, requestId: context.awsRequestId };
};
