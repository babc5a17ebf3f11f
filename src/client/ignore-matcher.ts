/** Paths a `.savassanignore` leaves out of a bundle. */
export interface IgnoreMatcher {
  /**
   * Whether `path` (relative to the function directory, `/`-separated) is left out: the last pattern that matches
   * it decides, and everything inside a directory that is left out is left out too (as with git, a `!` pattern
   * cannot bring back a file whose directory is excluded).
   */
  ignores(path: string, isDirectory: boolean): boolean;
}

interface Rule {
  regex: RegExp;
  negated: boolean;
  directoryOnly: boolean;
}

/**
 * Compiles gitignore-style patterns, one a line: blank lines and `#` comments are skipped; `*` matches within a
 * path segment, `?` one character, `[a-z]` a class (`[!a-z]` its complement); `**\/` any directories, `/**` all
 * inside; a trailing `/` matches directories only; a pattern with a `/` other than a trailing one is anchored at
 * the function directory (`/build` only there), one without matches at any depth; `!` brings back what an earlier
 * pattern left out; `\` escapes the next character (`\#`, `\!`, `\ `).
 *
 * @example
 * const matcher = compileIgnorePatterns('*.log\n!keep.log\n/tmp/\ntest/**\n');
 * matcher.ignores('a/debug.log', false); // true
 */
export function compileIgnorePatterns(text: string): IgnoreMatcher {
  const rules: Rule[] = [];
  for (const line of text.split(/\r?\n/)) {
    const rule = compileLine(line);
    if (rule !== null) rules.push(rule);
  }
  const matches = (path: string, isDirectory: boolean): boolean => {
    let ignored = false;
    for (const rule of rules) {
      if (rule.directoryOnly && !isDirectory) continue;
      if (rule.negated === ignored && rule.regex.test(path)) ignored = !rule.negated;
    }
    return ignored;
  };
  return {
    ignores(path, isDirectory) {
      const segments = path.split('/').filter((segment) => segment !== '');
      for (let i = 1; i < segments.length; i++) {
        if (matches(segments.slice(0, i).join('/'), true)) return true;
      }
      return segments.length > 0 && matches(segments.join('/'), isDirectory);
    },
  };
}

function compileLine(raw: string): Rule | null {
  // Trailing spaces go unless escaped with a backslash.
  let line = raw.replace(/(?<!\\)\s+$/, '');
  if (line === '' || line.startsWith('#')) return null;
  const negated = line.startsWith('!');
  if (negated) line = line.slice(1);
  const directoryOnly = line.endsWith('/');
  if (directoryOnly) line = line.replace(/\/+$/, '');
  const anchored = line.includes('/');
  line = line.replace(/^\/+/, '');
  if (line === '') return null;
  const body = globToRegex(line);
  return { regex: new RegExp(`^${anchored ? '' : '(?:.*/)?'}${body}$`), negated, directoryOnly };
}

const escapeRegex = (char: string): string => char.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');

function globToRegex(glob: string): string {
  let out = '';
  let i = 0;
  while (i < glob.length) {
    const char = glob[i] ?? '';
    if (char === '\\') {
      out += escapeRegex(glob[i + 1] ?? '\\');
      i += 2;
    } else if (char === '*' && glob[i + 1] === '*') {
      const atStart = i === 0 || glob[i - 1] === '/';
      const next = glob[i + 2];
      if (atStart && next === '/') {
        // `**/`: zero or more directories.
        out += '(?:.*/)?';
        i += 3;
      } else if (atStart && next === undefined) {
        // `/**` at the end (or `**` alone): everything.
        out += '.*';
        i += 2;
      } else {
        out += '[^/]*';
        i += 2;
      }
    } else if (char === '*') {
      out += '[^/]*';
      i++;
    } else if (char === '?') {
      out += '[^/]';
      i++;
    } else if (char === '[') {
      const close = classEnd(glob, i);
      if (close === -1) {
        out += '\\[';
        i++;
      } else {
        let inner = glob.slice(i + 1, close);
        const complement = inner.startsWith('!') || inner.startsWith('^');
        if (complement) inner = inner.slice(1);
        out += `[${complement ? '^' : ''}${inner.replace(/\\/g, '\\\\').replace(/\[/g, '\\[')}]`;
        i = close + 1;
      }
    } else {
      out += escapeRegex(char);
      i++;
    }
  }
  return out;
}

/** The index of the `]` closing the class opened at `open`, or -1 when it is not closed. */
function classEnd(glob: string, open: number): number {
  let i = open + 1;
  if (glob[i] === '!' || glob[i] === '^') i++;
  // A `]` first in the class is a member of it.
  if (glob[i] === ']') i++;
  while (i < glob.length && glob[i] !== ']') i++;
  return i < glob.length ? i : -1;
}
