import { Type } from 'typebox';

export const FunctionNameParams = Type.Object({ name: Type.String({ maxLength: 200 }) });

export const DeployBody = Type.Object(
  {
    code: Type.String({ description: 'The function bundle: a zip file, base64-encoded.', contentEncoding: 'base64' }),
    handler: Type.Optional(Type.String({ description: 'file.export, default "index.handler"' })),
    runtime: Type.Optional(Type.String({ description: 'nodejs20 (default) or nodejs24' })),
    env: Type.Optional(Type.Record(Type.String(), Type.String())),
    timeoutSeconds: Type.Optional(Type.Integer()),
    memoryMB: Type.Optional(Type.Integer()),
    maxInstances: Type.Optional(Type.Integer()),
    minInstances: Type.Optional(Type.Integer()),
    idleSeconds: Type.Optional(Type.Integer()),
    network: Type.Optional(Type.Boolean({ description: 'let the function reach the network (default false)' })),
    allowNet: Type.Optional(
      Type.Array(Type.String({ maxLength: 18 }), {
        maxItems: 32,
        description:
          'IPv4 CIDRs (like "10.1.2.0/24") a networked function may reach although private, loopback and ' +
          'link-local ranges are denied by default; needs network: true',
      }),
    ),
  },
  { additionalProperties: false },
);

export const SetCurrentBody = Type.Object({ version: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });

export const LogsQuery = Type.Object({
  follow: Type.Optional(
    Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')]),
  ),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
});

export const InvocationParams = Type.Object({ id: Type.String({ maxLength: 100 }) });
