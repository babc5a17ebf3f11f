// `savassan url …`: function URLs, which serve a function over raw HTTP as a Lambda function URL.
import { type Command, Option } from 'commander';
import { SavassanClient } from '../client/client.js';
import type { FunctionUrlAnswer } from '../client/client.js';
import { out, printJson, repeated, table } from './output.js';

const client = () => new SavassanClient();

function where(url: FunctionUrlAnswer): string {
  return `${client().url}${url.path}${url.host === null ? '' : ` and http://${url.host}/`}`;
}

export function addUrlCommands(program: Command): void {
  const url = program
    .command('url')
    .description('manage function URLs: a function answers any method and path at /fn/NAME/ (Lambda payload 2.0)');

  url
    .command('create')
    .description("give FUNCTION a URL, or replace its URL's settings")
    .argument('<function>', 'function name')
    .addOption(
      new Option('--auth <auth>', 'key: callers present an API key; none: public')
        .choices(['none', 'key'])
        .default('key'),
    )
    .option('--cors-origin <origin>', 'an origin allowed by CORS, * for any (repeatable)', repeated)
    .option('--cors-method <method>', 'a method allowed by CORS (repeatable; default any)', repeated)
    .option('--cors-header <header>', 'a request header allowed by CORS (repeatable; default any)', repeated)
    .option('--json', 'print the URL as PUT /v1/functions/NAME/url answers')
    .addHelpText(
      'after',
      '\nExamples:\n  savassan url create web --auth none\n' +
        '  savassan url create web --auth none --cors-origin https://app.example --cors-method GET --cors-method POST',
    )
    .action(
      async (
        name: string,
        opts: {
          auth: 'none' | 'key';
          corsOrigin?: string[];
          corsMethod?: string[];
          corsHeader?: string[];
          json?: boolean;
        },
      ) => {
        const cors =
          opts.corsOrigin === undefined
            ? null
            : {
                allowOrigins: opts.corsOrigin,
                allowMethods: opts.corsMethod ?? [],
                allowHeaders: opts.corsHeader ?? [],
              };
        const answer = await client().putFunctionUrl(name, { auth: opts.auth, cors });
        if (opts.json === true) return printJson(answer);
        out(`${name} answers at ${where(answer)} (auth ${answer.auth})`);
      },
    );

  url
    .command('ls')
    .description('list function URLs')
    .option('--json', 'print {urls: [...]} as GET /v1/urls answers')
    .action(async (opts: { json?: boolean }) => {
      const answer = await client().listFunctionUrls();
      if (opts.json === true) return printJson(answer);
      table([
        ['FUNCTION', 'AUTH', 'CORS ORIGINS', 'PATH', 'HOST'],
        ...answer.urls.map((entry) => [
          entry.functionName,
          entry.auth,
          entry.cors === null ? '-' : entry.cors.allowOrigins.join(','),
          entry.path,
          entry.host ?? '-',
        ]),
      ]);
    });

  url
    .command('rm')
    .description("remove FUNCTION's URL: it answers 404 from then on")
    .argument('<function>', 'function name')
    .option('--json', 'print {deleted: FUNCTION}')
    .action(async (name: string, opts: { json?: boolean }) => {
      await client().deleteFunctionUrl(name);
      if (opts.json === true) printJson({ deleted: name });
      else out(`removed the URL of ${name}`);
    });
}
