// `savassan alias set|ls|rm`: named pointers to one or more versions of a function, each with its share of the
// traffic (`invoke --qualifier ALIAS`; `live` is what an invoke without a qualifier runs).
import type { Command } from 'commander';
import { SavassanClient } from '../client/client.js';
import type { AliasAnswer } from '../client/client.js';
import { PlatformError } from '../core/errors.js';
import { out, printJson, table } from './output.js';

const client = () => new SavassanClient();

/** `1=0.9 2=0.1` as the API takes it: `{"1": 0.9, "2": 0.1}`. The server checks versions and the sum. */
export function weightArgs(args: readonly string[]): Record<string, number> {
  if (args.length === 0) {
    throw new PlatformError('BAD_REQUEST', 'name at least one VERSION=WEIGHT, like 1=0.9 2=0.1');
  }
  const weights: Record<string, number> = {};
  for (const arg of args) {
    const match = /^([0-9]+)=(.+)$/.exec(arg);
    if (match === null) throw new PlatformError('BAD_REQUEST', `expected VERSION=WEIGHT (like 2=0.1), got ${arg}`);
    const [, version = '', text = ''] = match;
    const weight = Number(text);
    if (text.trim() === '' || !Number.isFinite(weight)) {
      throw new PlatformError('BAD_REQUEST', `the weight of version ${version} is not a number: ${text}`);
    }
    const key = String(Number(version));
    if (key in weights) throw new PlatformError('BAD_REQUEST', `version ${key} is named twice`);
    weights[key] = weight;
  }
  return weights;
}

/** `1=0.9 2=0.1`: an alias's weights as `alias set` takes them. */
export function weightsText(weights: Record<string, number>): string {
  return Object.entries(weights)
    .map(([version, weight]) => `${version}=${weight}`)
    .join(' ');
}

function aliasRow(alias: AliasAnswer): string[] {
  return [alias.name, weightsText(alias.weights), alias.stickyHeader ?? '-', alias.updatedAt];
}

export function addAliasCommands(program: Command): void {
  const alias = program
    .command('alias')
    .description("manage aliases: named pointers to a function's versions, with weights (invoke --qualifier ALIAS)");

  alias
    .command('set')
    .description('create an alias or replace its weights: VERSION=WEIGHT pairs summing to 1')
    .argument('<name>', 'function name')
    .argument('<alias>', 'alias name: lowercase letters, digits and dashes, starting with a letter (live: the default)')
    .argument('<weights...>', 'VERSION=WEIGHT pairs, like 1=0.9 2=0.1 (up to 1000 versions)')
    .option('--sticky-header <header>', 'pick the version by the hash of this request header (one user, one version)')
    .option('--json', 'print {created, alias} with the alias as GET /v1/functions/NAME/aliases/ALIAS answers')
    .addHelpText(
      'after',
      '\nWithout --sticky-header each invocation picks a version at random by weight. Setting live moves the\n' +
        'traffic of invokes without a qualifier.\n' +
        '\nExamples:\n  savassan alias set shop beta 1=0.9 2=0.1\n' +
        '  savassan alias set shop live 2=0.5 3=0.5 --sticky-header x-user-id\n' +
        '  savassan invoke shop --qualifier beta',
    )
    .action(
      async (name: string, aliasName: string, args: string[], opts: { stickyHeader?: string; json?: boolean }) => {
        const answer = await client().putAlias(name, aliasName, weightArgs(args), opts.stickyHeader ?? null);
        if (opts.json === true) return printJson(answer);
        const sticky = answer.alias.stickyHeader === null ? '' : `, sticky on ${answer.alias.stickyHeader}`;
        out(
          `${answer.created ? 'created' : 'updated'} alias ${aliasName} of ${name}: ${weightsText(answer.alias.weights)}${sticky}`,
        );
      },
    );

  alias
    .command('ls')
    .description("list a function's aliases, their weights and sticky headers")
    .argument('<name>', 'function name')
    .option('--json', 'print {aliases: [...]} as GET /v1/functions/NAME/aliases answers')
    .addHelpText('after', '\nExamples:\n  savassan alias ls shop')
    .action(async (name: string, opts: { json?: boolean }) => {
      const answer = await client().listAliases(name);
      if (opts.json === true) return printJson(answer);
      table([['ALIAS', 'WEIGHTS', 'STICKY HEADER', 'UPDATED'], ...answer.aliases.map(aliasRow)]);
    });

  alias
    .command('rm')
    .description('delete an alias (not live, nor one a running rollout moves)')
    .argument('<name>', 'function name')
    .argument('<alias>', 'alias name')
    .option('--json', 'print {deleted: ALIAS, function: NAME}')
    .addHelpText('after', '\nExamples:\n  savassan alias rm shop beta')
    .action(async (name: string, aliasName: string, opts: { json?: boolean }) => {
      await client().deleteAlias(name, aliasName);
      if (opts.json === true) printJson({ deleted: aliasName, function: name });
      else out(`deleted alias ${aliasName} of ${name}`);
    });
}
